"""Notebooks: JupyterLab as a GPU-holding job, culled when idle; notebooks run headless as jobs."""
