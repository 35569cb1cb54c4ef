"""
The scenario plugin package.

Every module in any ``scenarios/`` directory on ``sys.path`` is searched for
``IScenario`` providers by ``twisted.plugin.getPlugins``.
"""

from twisted.plugin import pluginPackagePaths

__path__.extend(pluginPackagePaths(__name__))
__all__: list[str] = []
