"""The faucet is fair: one account cannot take an asset's whole supply and
lock every other account out of it (dex.api.trading.FAUCET_ACCOUNT_UNITS_MAX)."""

from __future__ import annotations

import pytest

from dex.api.execute import FAUCET_ACCOUNT_UNITS_MAX
from dex.auth import Keypair
from dex.client import Client, DexError
from dex.core.markets import units_to_amount
from tests.cluster.harness import Cluster


def test_one_account_stops_at_its_share_and_others_still_get_theirs(cluster: Cluster) -> None:
    usdt = cluster.cfg.markets.asset("USDT")
    share = units_to_amount(usdt, FAUCET_ACCOUNT_UNITS_MAX)
    with Client(cluster.urls, Keypair.generate()) as greedy, Client(cluster.urls, Keypair.generate()) as other:
        greedy.deposit("USDT", share)
        with pytest.raises(DexError) as e:
            greedy.deposit("USDT", "1")
        assert (e.value.status, e.value.code) == (400, -9003) and "Faucet limit" in e.value.msg

        other.deposit("USDT", share)  # the supply was not used up for everyone else

        balances = {b["asset"]: b["free"] for b in greedy.account()["balances"]}
        assert balances["USDT"] == share
