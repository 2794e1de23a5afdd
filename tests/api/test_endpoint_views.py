"""The router's in-memory view of an online endpoint (keys, traffic, mirrored traffic) against the
refresh that reads every endpoint from the store once a second (``endpoints/sharing.py``).

A refresh reads the store, then applies what it read. A change made through this server in between
(an update, new keys, a delete) is newer than that read: applying the read would undo the change
in the router until the next refresh, a second later. Mirrored traffic set just before a burst of
requests then reached no mirror (seen in the e2e endpoint tests under load)."""

from __future__ import annotations

import time

SCORE_BODY = {"data": [1]}


def _keys(api, name: str) -> dict:
    r = api.http.post(api.url(f"/onlineEndpoints/{name}/listKeys"))
    assert r.status_code == 200, r.text
    return r.json()


def _score(api, name: str, key: str) -> int:
    r = api.anon.post(
        api.url(f"/onlineEndpoints/{name}/score"), json=SCORE_BODY, headers={"Authorization": f"Bearer {key}"}
    )
    return r.status_code


def test_a_refresh_that_read_before_a_change_does_not_undo_it(sqlite_api):
    api = sqlite_api
    sup = api.app.state.endpoints
    assert api.http.put(api.url("/onlineEndpoints/ep1"), json={"auth_mode": "key"}).status_code == 200
    old = _keys(api, "ep1")["primaryKey"]

    # A refresh reads the endpoint here ...
    read_at = time.monotonic()
    spec_read, keys_read = {"auth_mode": "key"}, dict(sup.endpoints[("default", "ep1")].keys)
    # ... the primary key is regenerated through this server ...
    r = api.http.post(api.url("/onlineEndpoints/ep1/regenerateKeys"), json={"keyType": "primary"})
    assert r.status_code == 200, r.text
    new = _keys(api, "ep1")["primaryKey"]
    assert new != old
    # ... and then the refresh applies what it read: the older keys are not put back.
    sup.set_endpoint("default", "ep1", spec_read, keys_read, read_at=read_at)
    assert sup.endpoints[("default", "ep1")].keys["primaryKey"] == new
    assert _score(api, "ep1", old) == 401
    assert _score(api, "ep1", new) != 401  # let in (no deployment to route to: a 404 that says so)

    # A refresh that read after the change applies what is stored, as always.
    sup.sharing.refresh()
    assert sup.endpoints[("default", "ep1")].keys["primaryKey"] == new

    # A delete made while a refresh read: the refresh does not bring the endpoint back.
    read_at = time.monotonic()
    keys_read = dict(sup.endpoints[("default", "ep1")].keys)
    assert api.http.delete(api.url("/onlineEndpoints/ep1")).status_code == 204
    sup.set_endpoint("default", "ep1", spec_read, keys_read, read_at=read_at)
    assert ("default", "ep1") not in sup.endpoints
    assert _score(api, "ep1", new) == 401
