"""Models-file validation names the bad field; routing helpers are stable."""

from __future__ import annotations

from pathlib import Path

import pytest

from nova.llm.models_file import ModelsFileError, load_models_file, parse_models
from nova.llm.routing import prefix_key


def good() -> dict[str, object]:
    return {
        "models": {
            "llama": {
                "routing": {"policy": "prefix"},
                "deployments": [{"base_url": "http://gpu-1:8000/v1/", "weight": 2, "max_concurrency": 64}],
            }
        },
        "aliases": {"standard": "llama"},
    }


def test_valid_file_normalises_urls() -> None:
    spec = parse_models(good())
    dep = spec.models["llama"].deployments[0]
    assert dep.base_url == "http://gpu-1:8000/v1"
    assert spec.models["llama"].routing.policy == "prefix"


@pytest.mark.parametrize(
    ("mutate", "needle"),
    [
        (
            lambda d: d["models"]["llama"]["deployments"][0].update(weight=0),
            "models.llama.deployments.0.weight",
        ),
        (
            lambda d: d["models"]["llama"]["deployments"][0].update(base_url="gpu:8000"),
            "deployments.0.base_url",
        ),
        (lambda d: d["models"]["llama"]["deployments"][0].update(bogus=1), "deployments.0.bogus"),
        (lambda d: d["models"]["llama"].update(deployments=[]), "models.llama.deployments"),
        (lambda d: d["models"]["llama"]["routing"].update(policy="random"), "models.llama.routing.policy"),
        (lambda d: d["aliases"].update(tiny="missing"), "alias 'tiny' points to unknown model 'missing'"),
        (
            lambda d: d["models"]["llama"]["deployments"][0].update(api_key_env="NOVA_TEST_UNSET_KEY"),
            "models.llama.deployments.0: api_key_env 'NOVA_TEST_UNSET_KEY' is not set",
        ),
    ],
)
def test_invalid_field_is_named(mutate: object, needle: str) -> None:
    data = good()
    mutate(data)  # type: ignore[operator]
    with pytest.raises(ModelsFileError) as err:
        parse_models(data, "models.yaml")
    assert needle in str(err.value)


def test_unreadable_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ModelsFileError, match="cannot read"):
        load_models_file(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("models: [unclosed")
    with pytest.raises(ModelsFileError, match="not valid YAML"):
        load_models_file(bad)


def test_prefix_key_depends_only_on_leading_messages() -> None:
    sys = {"role": "system", "content": "be brief"}
    a = prefix_key([sys, {"role": "user", "content": "q1"}], 2)
    b = prefix_key([sys, {"role": "user", "content": "q1"}, {"role": "assistant", "content": "x"}], 2)
    c = prefix_key([sys, {"role": "user", "content": "q2"}], 2)
    assert a == b != c
