"""The Discord adapter: a thin layer between discord.py and the engine.

``client`` (the bot and its intents), ``app`` (composition and background loops),
``commands`` (slash commands), ``actions`` (what a learner's action does, shared by commands,
buttons and DMs), ``transport`` (the engine's Transport), ``webhooks`` (one webhook per
channel for the crew's names and faces), ``render`` (Outgoing → Discord pieces), ``views``
(persistent buttons), ``splitting`` (long text), ``secrets`` (tokens at rest).
"""
