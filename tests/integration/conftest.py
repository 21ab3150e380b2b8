"""A whole shop as processes (TC + services) on SQLite or MariaDB."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from atx.shop.topology import Shop, ShopConfig, start_shop

ShopFactory = Callable[..., Shop]


@pytest.fixture(params=["sqlite", "mariadb"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def shop_factory(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[ShopFactory]:
    shops: list[Shop] = []

    def make(**overrides: Any) -> Shop:
        config = ShopConfig(tmp_path / f"shop{len(shops)}", chain_latency_ms=10, **overrides)
        if backend == "mariadb":
            factory = request.getfixturevalue("mariadb_factory")
            config.db_urls = {n: factory() for n in ("order", "payment", "collectible", "chain")}
        shop = start_shop(config)
        shops.append(shop)
        return shop

    yield make
    for shop in shops:
        shop.stop()
