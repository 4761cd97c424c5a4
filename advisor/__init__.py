"""The advisor: history in, per-workload features, classes, decisions, a fleet plan, configs and reports out.

Data moves one way through its modules: ``history`` -> ``features`` -> ``classes`` -> ``decide`` -> ``plan`` ->
``configs`` -> ``report`` -> ``deliver``; ``schedule`` runs the whole chain weekly. ``model`` holds the typed
boundaries between the stages.
"""
