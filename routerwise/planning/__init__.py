"""The planning workflow: from a problem to a plan, and the plan checked.

``problem_file`` reads a problem (TOML plus tables), ``solve`` dispatches to a solver,
``online_router`` routes prompts by a plan's prices, ``replay`` replays a plan through the
serving simulator, ``consistency`` re-plans until the replay meets the SLO with a stated
confidence, and ``cost`` finds the cheapest cluster that meets an SLO and a quality floor.
The package ``routerwise`` re-exports their public names; the modules keep their own.
"""

__all__ = ["problem_file", "solve", "online_router", "replay", "consistency", "cost"]
