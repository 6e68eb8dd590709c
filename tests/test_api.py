"""The curated public API: every listed name resolves, and importing the package stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest

import inpars


@pytest.mark.parametrize("name", inpars.__all__)
def test_every_public_name_resolves(name: str) -> None:
    assert getattr(inpars, name) is not None


def test_unknown_name_is_an_attribute_error() -> None:
    with pytest.raises(AttributeError):
        inpars.no_such_thing  # noqa: B018


def test_import_and_config_do_not_load_torch() -> None:
    code = ("import sys, inpars; inpars.load_config_dict({'dataset': {'name': 'x'}}); inpars.FILTERS; "
            "inpars.FAMILIES; print('torch' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]


def test_dataset_sources_are_a_registry(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from inpars.datasets import SOURCES, load_dataset

    assert {"irds", "beir"} <= set(SOURCES.names())
    with pytest.raises(FileNotFoundError, match="not a BEIR dataset"):
        load_dataset("beir:no-such-collection")
