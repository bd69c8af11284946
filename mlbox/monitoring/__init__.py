"""Monitoring and explanations of served models: drift, data quality, performance with late labels, bias, champion vs challenger, SHAP."""
