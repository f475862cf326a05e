"""acceflow.clinical"""
