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
