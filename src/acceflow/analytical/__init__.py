"""acceflow.analytical"""
