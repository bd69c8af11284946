"""Labeling: projects, tasks, annotations, pre-labels, active learning, agreement and weak supervision."""
