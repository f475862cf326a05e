"""acceflow.io"""
