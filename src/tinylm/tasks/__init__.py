"""Task plug-ins on top of the shared data, training, evaluation and serving code.

Each task is a package here (code2, arithmetic) whose `plugin.py` says what it supplies;
registry.py lists the packages and is the only way the library's shared layers reach a
task (they never import one by name).
"""

from tinylm.tasks.registry import NamedGrammar, TaskPlugin, get_plugin, model_task, plugins, task_names

__all__ = ["NamedGrammar", "TaskPlugin", "get_plugin", "model_task", "plugins", "task_names"]
