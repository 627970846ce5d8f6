"""holmes"""
