"""Who owns which shard: rendezvous hashing over the live replicas, bounded so that the shares are even."""

from collections import Counter

from bridge.kafka_shards import assign_shards

SHARDS = 16


def test_every_replica_owns_an_even_share():
    for count in range(1, 8):
        members = [f"replica-{n}-{count}" for n in range(count)]
        owners = assign_shards(SHARDS, members)
        shares = Counter(owners)
        assert None not in shares and set(shares) == set(members), shares
        assert max(shares.values()) - min(shares.values()) <= 1, f"{count} replicas: {shares}"


def test_every_replica_names_the_same_owners_whatever_order_it_lists_the_members_in():
    assert assign_shards(SHARDS, ["a1", "b2", "c3"]) == assign_shards(SHARDS, ["c3", "a1", "b2"])


def test_when_a_replica_leaves_mostly_its_own_shards_move():
    before = assign_shards(SHARDS, ["a1", "b2", "c3", "d4"])
    after = assign_shards(SHARDS, ["a1", "b2", "c3"])
    moved = [shard for shard in range(SHARDS) if before[shard] != after[shard]]
    own = [shard for shard in moved if before[shard] == "d4"]
    assert len(own) == 4, "all of the leaver's shards move"
    assert len(moved) - len(own) < len(own), f"fewer of the others' shards move, only to even the shares: {moved}"


def test_a_replica_recomputes_the_owners_only_when_the_members_change(monkeypatch):
    from bridge import kafka_shards

    computed = []
    real = kafka_shards.assign_shards
    monkeypatch.setattr(kafka_shards, "assign_shards", lambda shards, members: computed.append(members) or
                        real(shards, members))
    membership = kafka_shards.Membership()
    membership.me, membership.interval, membership.heard = "a1", 60.0, {}
    membership.owners, membership.members = [membership.me] * SHARDS, frozenset([membership.me])

    membership._recompute()  # alone, as at the start: nothing to compute
    membership.on_heartbeat({"member": "b2"}, None)
    membership._recompute()
    membership.on_heartbeat({"member": "b2"}, None)
    membership._recompute()  # the same two: the owners stand
    assert computed == [frozenset({"a1", "b2"})]
    assert membership.owners == real(SHARDS, ["a1", "b2"])

    membership.on_heartbeat({"member": "b2", "leaving": True}, None)
    assert computed[-1] == frozenset({"a1"}) and membership.owners == [membership.me] * SHARDS
