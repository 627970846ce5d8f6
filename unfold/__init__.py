"""unfold"""
