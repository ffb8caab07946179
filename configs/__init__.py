"""Pretraining recipes, installed as ``siameseim_tf.configs`` (see siameseim_tf/recipes.py)."""
