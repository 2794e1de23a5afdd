"""Job names: the naming rule and generated names like ``brave_otter_x7kq2mzr9d``.

azure-ai-ml names a job ``<adjective>_<noun>_<10 characters of [b-df-hj-np-tv-z0-9]>`` when the
user gives none (azureml-v2-surface.md §1); Shoal uses the same shape with its own word lists.
"""

from __future__ import annotations

import secrets

from shoal.entities.validation import NameRule

JOB_NAME = NameRule(
    "job name",
    r"[a-zA-Z0-9][a-zA-Z0-9_-]{0,254}",
    "it must start with a letter or digit, contain only letters, digits, '_' and '-', "
    "and be at most 255 characters long",
)

SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxyz0123456789"
"""Consonants and digits (no vowels, so no accidental words): ``[b-df-hj-np-tv-z0-9]``."""
SUFFIX_LENGTH = 10

ADJECTIVES: tuple[str, ...] = tuple(
    """
    able amber ancient autumn bold brave bright brisk calm careful cheerful clever cool cosy
    crisp curious dapper daring deep eager early easy epic fair fancy fast fierce fluffy fond
    frank free fresh friendly frosty gentle giddy glad golden good grand green happy hardy
    helpful honest humble icy jolly keen kind lively loyal lucky mellow merry mighty misty
    modest neat nimble noble patient plucky polite proud quick quiet rapid ready rosy royal
    rustic salty shiny silent silver simple sleek smart smooth snowy soft solid spicy steady
    stoic sturdy sunny super swift tender tidy tiny tough tranquil true upbeat vivid warm
    wise witty young zany zealous zesty
    """.split()
)

NOUNS: tuple[str, ...] = tuple(
    """
    acorn anchor apple arrow badger basket beacon bear beetle berry bird boat bottle branch
    bread breeze brook bucket button cactus camel candle canyon carrot castle cedar cherry
    cloud clover comet coral cotton crane cricket daisy deer dolphin dragon drum eagle falcon
    feather fern fig finch forest fox garden gecko ginger glacier grape harbor hawk hazel
    heron island jacket kettle kite lamp lantern lemon lily lion lizard maple meadow melon
    mirror moon mountain nest nut oak ocean olive orange otter owl panda parrot peach pebble
    pepper pigeon pine plum pond rabbit river robin rocket seal shell sparrow spoon star stone
    tiger tomato tulip turtle violin walrus whale willow window zebra
    """.split()
)


def _suffix(length: int = SUFFIX_LENGTH) -> str:
    return "".join(secrets.choice(SUFFIX_ALPHABET) for _ in range(length))


def generate_job_name() -> str:
    """A fresh job name, e.g. ``brave_otter_x7kq2mzr9d`` (matches :data:`JOB_NAME`)."""
    return f"{secrets.choice(ADJECTIVES)}_{secrets.choice(NOUNS)}_{_suffix()}"


def generate_display_name() -> str:
    """A short, readable display name such as ``calm_river_4k`` (Azure ML shows one for every job)."""
    return f"{secrets.choice(ADJECTIVES)}_{secrets.choice(NOUNS)}_{_suffix(2)}"


def is_valid_job_name(name: str) -> bool:
    return isinstance(name, str) and JOB_NAME.regex.fullmatch(name) is not None
