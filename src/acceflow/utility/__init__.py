"""acceflow.utility"""
