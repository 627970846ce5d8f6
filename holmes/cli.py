def main():
    print("holmes")
