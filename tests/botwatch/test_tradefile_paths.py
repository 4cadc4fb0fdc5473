"""The vectorized and the row-by-row paths of the trade-file check agree exactly: on every corruption of
the corpus, on random files in every spelling the format allows, read whole or in random appends."""

import random
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from botwatch.core import tradefile
from botwatch.core.book import TradeBook
from botwatch.core.config import DataFormat
from botwatch.core.idwindow import IdWindow, hash_ids
from botwatch.core.tradefile import DataFileCheck
from tests.botwatch.test_tradefile import CORRUPTIONS, HEADER, NOW, row

FAST, ROW_BY_ROW = 0, 10**12      # FAST_MIN_BYTES: vectorize every read / never


def run(path: Path, monkeypatch, min_bytes: int, appends: list[bytes] = (), chunk: int | None = None,
        data_format: DataFormat | None = None):
    """Collect `path`, then after each append; the statuses, the book and the check."""
    monkeypatch.setattr(tradefile, "FAST_MIN_BYTES", min_bytes)
    if chunk:
        monkeypatch.setattr(tradefile, "READ_CHUNK", chunk)
    book = TradeBook(1000.0)
    check = DataFileCheck(path, data_format, book, clock=lambda: NOW)
    statuses = [check.collect()]
    for data in appends:
        with open(path, "ab") as f:
            f.write(data)
        statuses.append(check.collect())
    return statuses, book, check


def same_outcome(a, b) -> None:
    (statuses_a, book_a, check_a), (statuses_b, book_b, check_b) = a, b
    assert [replace(s, last_write=None) for s in statuses_a] == [replace(s, last_write=None) for s in statuses_b]
    assert book_a.summary() == book_b.summary()
    assert (book_a.fees, book_a.closed_gains, book_a.trades) == (book_b.fees, book_b.closed_gains, book_b.trades)
    assert {s: vars(p) for s, p in book_a.positions.items()} == {s: vars(p) for s, p in book_b.positions.items()}
    assert list(book_a.positions) == list(book_b.positions)     # same order: the unrealized sum adds in it
    assert check_a._window.added == check_b._window.added


def both(path: Path, monkeypatch, **kwargs):
    original = path.read_bytes()
    fast = run(path, monkeypatch, FAST, **kwargs)
    path.write_bytes(original)
    slow = run(path, monkeypatch, ROW_BY_ROW, **kwargs)
    return fast, slow


def good_rows(count: int, start: int = 0) -> str:
    symbols = ("BTC/USDT", "ETH/USDT", "DOGE/USDT")
    return "".join(row(i, side="buy" if i % 3 else "sell", price=f"{100 + i % 17}.25", qty=f"0.{1 + i % 9}",
                       symbol=symbols[i % 3]) for i in range(start, start + count))


@pytest.mark.parametrize("bad_line, check_name", CORRUPTIONS)
@pytest.mark.parametrize("where", ["first read", "append"])
def test_the_paths_agree_on_every_corruption(tmp_path, monkeypatch, bad_line, check_name, where):
    path = tmp_path / "t.csv"
    bad = bad_line if isinstance(bad_line, bytes) else bad_line.encode()
    before, after = good_rows(2000).encode(), good_rows(2000, start=3000).encode()
    if where == "first read":
        path.write_bytes(HEADER.encode() + before + bad + after)
        appends = []
    else:
        path.write_bytes(HEADER.encode() + before)
        appends = [bad + after]
    fast, slow = both(path, monkeypatch, appends=appends)
    same_outcome(fast, slow)
    status = fast[0][-1]
    assert not status.valid and status.problems[check_name] >= 1
    if where == "append":
        assert fast[2].fast_rows >= 2000        # the clean first read did go the vectorized way


def test_a_clean_file_goes_the_vectorized_way_with_the_same_numbers(tmp_path, monkeypatch):
    path = tmp_path / "t.csv"
    path.write_text(HEADER + good_rows(20_000))
    fast, slow = both(path, monkeypatch, appends=[good_rows(500, start=20_000).encode()])
    same_outcome(fast, slow)
    assert fast[0][-1].valid and fast[0][-1].trades == 20_500
    assert fast[2].fast_rows == 20_500 and slow[2].fast_rows == 0


# -- random files -----------------------------------------------------------------------------------

def random_timestamp(rng: random.Random, t: float, fmt: str, odd: float) -> str:
    """`t` spelled as the format allows; whole seconds may also be spelled without a fraction."""
    whole = t == int(t)
    if fmt == "epoch_s":
        return rng.choice([f"{t:.3f}", f"{t:.6f}", repr(t), f" {t}", f"{t:e}" if odd else repr(t)]
                          + ([f"{int(t)}"] if whole else []))
    if fmt == "epoch_ms":
        return rng.choice([f"{t * 1000:.0f}", f"{t * 1000:.3f}", repr(t * 1000)])
    from datetime import datetime, timedelta, timezone
    offset = rng.choice([0, 0, 0, 2, -5.5, 14])
    moment = datetime.fromtimestamp(t, timezone(timedelta(hours=offset)))
    text = moment.isoformat(sep=rng.choice("TTT "),
                            timespec=rng.choice(["milliseconds", "microseconds"] + (["seconds"] if whole else [])))
    if offset == 0 and rng.random() < 0.6:
        text = text.replace("+00:00", rng.choice(["Z", ""]))
    if rng.random() < odd:   # spellings fromisoformat reads and the digit reader leaves to it
        text = rng.choice([" " + text, text + " ", text.replace("T", "t"), moment.isoformat(timespec="auto"),
                           moment.replace(tzinfo=None).isoformat(timespec="hours"), moment.date().isoformat()
                           if moment.time() == moment.replace(hour=0, minute=0, second=0, microsecond=0).time()
                           else text])
    return text


def random_number(rng: random.Random, value: float, odd: float) -> str:
    plain = [repr(value), f"{value:.12f}", f"{value:e}", f"{value:g}", f"{value:.17g}", f"{value:.4E}"]
    return rng.choice(plain + [f"+{value}", f" {value}", f"{value}\t", f"1_{value}"]) if rng.random() < odd \
        else rng.choice(plain)


def random_file(rng: random.Random, fmt: str, rows: int, damage: float, odd: float) -> list[bytes]:
    """Lines of a random trade file: valid rows in every spelling (the odd ones at rate `odd`), and at
    rate `damage` a damaged one."""
    t = float(1_780_000_000 + rng.randrange(1000))
    symbols = ["BTC/USDT", "ETH/USDT", "SOL/USDT", "PEPE/USDT", "ÄÖ/€"]
    odd_symbols = [" SOL/USDT", "PEPE/USDT ", "\tBTC/USDT"]
    ids = [f"id{n}" for n in range(rows)]
    rng.shuffle(ids)
    lines = []
    for n in range(rows):
        t += rng.choice([0, 0.25, 0.5, 1, 1, 3, 60])
        odd_row = rng.random() < odd
        trade_id = rng.choice([f" {ids[n]}", f"{ids[n]}\t", f"ü{ids[n]}"]) if odd_row else ids[n]
        side = rng.choice(["BUY", " Sell", "buy "]) if odd_row else rng.choice(["buy", "sell"])
        symbol = rng.choice(odd_symbols) if odd_row else rng.choice(symbols)
        fields = [random_timestamp(rng, t, fmt, odd), trade_id, symbol, side,
                  random_number(rng, round(rng.uniform(0.001, 70000), rng.randrange(0, 9)) or 1.0, odd),
                  random_number(rng, round(rng.uniform(0.0001, 50), rng.randrange(1, 7)) or 0.5, odd),
                  random_number(rng, round(rng.uniform(0, 0.5), 6), odd)]
        line = ",".join(fields)
        if rng.random() < odd:
            line = ",".join(f'"{f}"' for f in fields)
        if rng.random() < damage:
            line = damage_line(rng, line, ids)
        lines.append((line + ("\r\n" if rng.random() < odd else "\n")).encode())
    return lines


def damage_line(rng: random.Random, line: str, ids: list[str]) -> str:
    fields = line.split(",")
    kind = rng.randrange(9)
    if kind == 0:
        return ",".join(fields[:-1])
    if kind == 1:
        fields[4] = rng.choice(["abc", "nan", "inf", "", "True", "false", "1_0", "-3", "0"])
    elif kind == 2:
        fields[1] = rng.choice(ids)                          # a duplicate id (or, rarely, its own)
    elif kind == 3:
        fields[0] = rng.choice(["2020-01-01T00:00:00Z", "2099-01-01T00:00:00Z", "yesterday", "2026-13-01T00:00:00Z",
                                "2026-02-30T00:00:00Z", "1", "1e30"])
    elif kind == 4:
        fields[3] = rng.choice(["hold", "", "b uy"])
    elif kind == 5:
        fields[6] = "-0.5"
    elif kind == 6:
        return ""
    elif kind == 7:
        return line + "," + line
    else:
        fields[5] = "0"
    return ",".join(fields)


@pytest.mark.parametrize("seed", range(24))
def test_the_paths_agree_on_random_files(tmp_path, monkeypatch, seed):
    rng = random.Random(seed)
    fmt = ("iso", "iso", "epoch_s", "epoch_ms")[seed % 4]
    damage = (0.0, 0.0005, 0.003)[seed % 3]
    odd = (0.0, 0.0, 0.002, 0.02)[seed // 4 % 4]
    lines = random_file(rng, fmt, rng.randrange(200, 4000), damage, odd)
    cut = sorted(rng.sample(range(1, len(lines)), min(len(lines) - 1, rng.randrange(0, 6))))
    parts = [b"".join(lines[a:b]) for a, b in zip([0] + cut, cut + [len(lines)])]
    path = tmp_path / "t.csv"
    path.write_bytes(HEADER.encode() + parts[0])
    data_format = DataFormat(timestamp=fmt, dedup_window=rng.choice([50_000, 64, 1000]))
    chunk = rng.choice([None, 4096, 65536])
    fast, slow = both(path, monkeypatch, appends=parts[1:], chunk=chunk, data_format=data_format)
    same_outcome(fast, slow)
    if not damage and not odd:      # a plain clean file goes the vectorized way whole
        assert fast[0][-1].valid and fast[2].fast_rows == fast[0][-1].rows


# -- the id window ----------------------------------------------------------------------------------

def test_the_id_window_answers_as_a_plain_list_of_generations_would():
    """Oracle: generations as Python lists, sealed every `generation` rows, the oldest dropped while the
    others still cover `size` rows; checked one id at a time, against batches of every length."""
    rng = np.random.default_rng(7)
    for size in (1, 5, 31, 32, 33, 100, 1000):
        window = IdWindow(size)
        generations: list[list[int]] = [[]]
        for batch in range(40):
            hashes = rng.integers(0, 300, int(rng.integers(0, 200))).astype(np.uint64)
            expected = []
            for h in hashes.tolist():
                expected.append(any(h in g for g in generations))
                generations[-1].append(h)
                if len(generations[-1]) == window.generation:
                    generations.append([])
                    while len(generations) > 2 and sum(map(len, generations)) - len(generations[0]) >= size:
                        generations.pop(0)
            assert window.check(hashes).tolist() == expected, (size, batch)


def test_trade_ids_hash_the_same_from_strings_and_from_bytes():
    ids = ["t1", "", "id-000123", "ÄÖ€", "x" * 300]
    assert len(set(hash_ids(ids).tolist())) == len(ids)
    assert hash_ids(ids).tolist() == [hash_ids([i])[0] for i in ids]


def test_timestamps_read_from_digits_are_what_fromisoformat_reads():
    """Every string the digit reader takes, Python takes to the same float; what Python refuses, it refuses."""
    from botwatch.core import tradefile_fast
    from botwatch.core.tradefields import TIMESTAMP_PARSERS

    rng = random.Random(3)
    texts = ["2024-02-29T23:59:59Z", "2023-02-29T00:00:00Z", "2100-02-29T00:00:00", "2000-02-29 12:00:00.500",
             "2026-12-31T23:59:59.999999+14:00", "2026-01-01T00:00:00.000-05:30", "2026-04-31T00:00:00Z",
             "2026-06-01T24:00:00Z", "2026-06-01T23:60:00Z", "2026-06-01T23:59:60Z", "2026-00-10T00:00:00Z",
             "2026-06-00T00:00:00Z", "1969-12-31T23:59:59Z", "2026-06-01T00:00:00+24:00", "2026-06-01X00:00:00Z"]
    for _ in range(3000):
        hms = f"{rng.randrange(0, 25):02d}:{rng.randrange(0, 61):02d}:{rng.randrange(0, 61):02d}"
        texts.append(f"{rng.randrange(1960, 2210):04d}-{rng.randrange(0, 14):02d}-{rng.randrange(0, 33):02d}"
                     f"{rng.choice('T ')}{hms}"
                     f"{rng.choice(['', '.123', '.000001', '.999999'])}{rng.choice(['', 'Z', '+02:00', '-11:45'])}")
    data = "".join(f"{t}\n" for t in texts).encode()
    fields = tradefile_fast._Fields.split(data, 1)
    start, length = fields.field(0)
    taken = 0
    for size in set(length.tolist()):
        shape = tradefile_fast._ISO_SHAPES.get(size)
        if shape is None:
            continue
        rows = np.flatnonzero(length == size)
        ok, values = tradefile_fast._iso_from_digits(fields.buffer, start[rows], size, *shape)
        for line, accepted, value in zip(rows.tolist(), ok.tolist(), values.tolist()):
            try:
                expected = TIMESTAMP_PARSERS["iso"](texts[line])
            except ValueError:
                assert not accepted, texts[line]
                continue
            if accepted:
                taken += 1
                assert value == expected, texts[line]
    assert taken > 1000
