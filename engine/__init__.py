"""trainconsole's engine: settings, data, models and the training loop, in plain Python and PyTorch.

It never imports textual or plotext: the console and the headless CLI are two
listeners of the same events.
"""

__version__ = "0.1.0"
