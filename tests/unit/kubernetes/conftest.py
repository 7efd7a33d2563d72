"""Each overlay rendered once per session (kustomize takes a second or two)."""

from __future__ import annotations

import pytest

from tests.unit.kubernetes.manifests import OVERLAYS, Rendered, copy_tree, render_overlay


@pytest.fixture(scope="session")
def rendered_overlays(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Rendered]:
    tree = copy_tree(tmp_path_factory.mktemp("kubernetes"))
    return {overlay: Rendered(overlay, render_overlay(tree, overlay)) for overlay in OVERLAYS}


@pytest.fixture(params=OVERLAYS)
def rendered(request: pytest.FixtureRequest, rendered_overlays: dict[str, Rendered]) -> Rendered:
    return rendered_overlays[request.param]
