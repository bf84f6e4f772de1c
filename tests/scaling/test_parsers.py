
import numpy as np
import pytest

from scaling.data.log import InteractionLog, build_log, k_core_filter, shuffle_ties
from scaling.data.parsers import (
    parse_amazon_ratings, parse_ml1m_ratings, parse_ml20m_ratings, parse_s3rec_sequences, parse_tsv_ratings,
)
from scaling.errors import GrscaleError
from tests.scaling.fixtures import ROWS, write_amazon, write_beauty, write_ml1m, write_ml20m, write_ml100k


@pytest.mark.parametrize("write, parse", [
    (write_ml100k, parse_tsv_ratings), (write_ml1m, parse_ml1m_ratings), (write_ml20m, parse_ml20m_ratings),
])
def test_movielens_formats_parse_every_field(tmp_path, write, parse):
    raw = parse(write(tmp_path))
    assert raw.users.tolist() == [r[0] for r in ROWS]
    assert raw.items.tolist() == [r[1] for r in ROWS]
    assert raw.timestamps.tolist() == [r[3] for r in ROWS]
    offset = 0.5 if parse is parse_ml20m_ratings else 0.0
    np.testing.assert_allclose(raw.ratings, [r[2] + offset for r in ROWS])


def test_amazon_string_ids(tmp_path):
    raw = parse_amazon_ratings(write_amazon(tmp_path))
    assert raw.users[0] == "U1" and raw.items[0] == "B0030"
    log = build_log("amazon-books", raw, positive_rating=4.0)
    assert log.num_users == 3 and log.num_items == 5


def test_s3rec_positions_stand_in_for_time(tmp_path):
    raw = parse_s3rec_sequences(write_beauty(tmp_path))
    assert raw.items.tolist() == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 4, 11, 4, 12, 13]
    assert raw.timestamps.tolist()[:6] == [0, 1, 2, 3, 4, 0]
    log = build_log("beauty", raw, positive_rating=None)
    assert not log.has_labels and log.num_items == 13


def test_stable_sort_keeps_file_order_for_ties_and_ids_are_contiguous(tmp_path):
    log = build_log("ml-1m", parse_ml1m_ratings(write_ml1m(tmp_path)), positive_rating=4.0)
    # items 10,20,30,40,50 -> 1..5; user 1 sorted by time: 20(t90), 30(t100), 10(t100), 40(t200)
    assert log.offsets.tolist() == [0, 4, 8, 11]
    assert log.item_ids[:4].tolist() == [2, 3, 1, 4]
    assert log.timestamps[:4].tolist() == [90, 100, 100, 200]
    assert log.labels[:4].tolist() == [1.0, 1.0, 0.0, 0.0]  # ratings 4, 5, 3, 2
    assert sorted(set(log.item_ids.tolist())) == [1, 2, 3, 4, 5]


def test_shuffle_ties_reorders_equal_timestamps_only():
    # One user with three tied blocks (times 5, 7, 9) of 8 items each; every array moves with its item.
    times = np.repeat([5, 7, 9], 8)
    items = np.arange(1, 25)
    log = InteractionLog(name="t", item_ids=items, timestamps=times, ratings=items.astype(np.float32),
                         labels=(items % 2).astype(np.float32), offsets=np.array([0, 24]), has_labels=True)
    shuffled = shuffle_ties(log)
    np.testing.assert_array_equal(shuffled.timestamps, times)
    for block in range(3):
        kept = slice(8 * block, 8 * block + 8)
        assert sorted(shuffled.item_ids[kept].tolist()) == items[kept].tolist()
    assert shuffled.item_ids.tolist() != items.tolist()
    np.testing.assert_array_equal(shuffled.ratings, shuffled.item_ids)
    np.testing.assert_array_equal(shuffled.labels, shuffled.item_ids % 2)
    np.testing.assert_array_equal(shuffle_ties(log).item_ids, shuffled.item_ids)  # one fixed order
    assert shuffle_ties(log, seed=1).item_ids.tolist() != shuffled.item_ids.tolist()


def test_shuffle_ties_keeps_users_apart(tmp_path):
    log = build_log("ml-1m", parse_ml1m_ratings(write_ml1m(tmp_path)), positive_rating=4.0)
    shuffled = shuffle_ties(log)
    np.testing.assert_array_equal(shuffled.offsets, log.offsets)
    for user in range(log.num_users):
        span = slice(log.offsets[user], log.offsets[user + 1])
        assert sorted(shuffled.item_ids[span].tolist()) == sorted(log.item_ids[span].tolist())


def test_k_core_filter_iterates_until_stable(tmp_path):
    rows = [("a", f"i{j}", 5.0, j) for j in range(3)] + [("b", "i0", 5.0, 1), ("b", "i1", 5.0, 2), ("c", "i9", 5.0, 1)]
    raw = parse_amazon_ratings(write_amazon(tmp_path, rows))
    kept = k_core_filter(raw, 2)
    # c and i9 go (1 each); then i2 has 1 -> goes; a keeps i0,i1; b keeps i0,i1
    assert sorted(zip(kept.users.tolist(), kept.items.tolist())) == [("a", "i0"), ("a", "i1"), ("b", "i0"), ("b", "i1")]


@pytest.mark.parametrize("name, content, parse, bad_line", [
    ("u.data", "1\t2\t3\t4\n1\t2\tx\t5\n", parse_tsv_ratings, 2),
    ("u.data", "1\t2\t3\t4\n1\t2\t3\n", parse_tsv_ratings, 2),
    ("ratings.dat", "1::2::3::4\n5::6::7::8\n1::2::3\n", parse_ml1m_ratings, 3),
    ("ratings.dat", "1::2::3::4\n1:2:3:4\n", parse_ml1m_ratings, 2),
    ("ratings.csv", "userId,movieId,rating,timestamp\n1,2,3.5,4\n1,2,3.5,4,9\n", parse_ml20m_ratings, 3),
    ("ratings_Books.csv", "u,i,5.0,1\nu,i,five,2\n", parse_amazon_ratings, 2),
    ("Beauty.txt", "1 2 3\n2 x 4\n", parse_s3rec_sequences, 2),
    ("Beauty.txt", "1 2 3\n2\n", parse_s3rec_sequences, 2),
])
def test_malformed_line_names_file_line_number_and_line(tmp_path, name, content, parse, bad_line):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(GrscaleError) as info:
        parse(path)
    message = str(info.value)
    line = content.splitlines()[bad_line - 1]
    assert f"{path}:{bad_line}:" in message and repr(line) in message


def test_ml20m_wrong_header(tmp_path):
    path = tmp_path / "ratings.csv"
    path.write_text("user,item,rating,time\n1,2,3,4\n")
    with pytest.raises(GrscaleError, match=r"ratings.csv:1: .*userId,movieId,rating,timestamp"):
        parse_ml20m_ratings(path)


def test_empty_file_is_an_error(tmp_path):
    path = tmp_path / "u.data"
    path.write_text("")
    with pytest.raises(GrscaleError, match="u.data"):
        parse_tsv_ratings(path)
