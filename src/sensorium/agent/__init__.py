"""An embodied agent's ground: BabyAI levels (minigrid) and the planner bot's demonstrations.

`sensorium.agent.demos` writes and reads the bot's episodes (what the agent saw, its mission, what the
bot did) as compact npz shards; the agent that learns from them comes next (issue 18).
Needs the `agent` extra: `pip install 'sensorium[agent]'` (minigrid, gymnasium, pygame-ce).
"""
