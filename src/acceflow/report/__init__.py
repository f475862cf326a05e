"""acceflow.report"""
