"""acceflow.imaging"""
