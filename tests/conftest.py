"""Suite-wide test settings.

Hypothesis runs deterministically (derandomized) with its "explain" phase off: that phase imports
libcst, whose DeprecationWarning would turn a real failure into an INTERNALERROR under
``filterwarnings = error``.
"""

from __future__ import annotations

from hypothesis import Phase, settings

settings.register_profile(
    "quicsilver",
    derandomize=True,
    deadline=None,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target, Phase.shrink],
)
settings.load_profile("quicsilver")
