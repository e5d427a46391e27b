"""TextEncoder on the real all-MiniLM-L6-v2 against sentence-transformers and transformers."""

import json
import shutil

import pytest
import torch
import torch.nn.functional as F

from gnnrec.features import TextEncoder
from gnnrec.features.encoder import minilm_path, pool

pytestmark = pytest.mark.usefixtures("offline_hub")

LONG = " ".join(f"word{i} of a very long product description" for i in range(80))
TEXTS = [
    "The Prophet. By Kahlil Gibran. Category: Literature & Fiction, Poetry",
    "",
    " ",
    "Heat",
    "Toy Story (1995). Genres: Animation Children's Comedy",
    LONG,
    "Japanese Kit Kat Maccha Green Tea Flavor (5 Bag) (4.91oz x 5)",
    "Ateco Food Coloring Kit, 6 colors",
    "Ünïcödé títle — with dashes, “quotes” and emoji ✓",
    "ALL CAPS TITLE",
    "12345",
    "The Book of Revelation. By Clarence Larkin",
    "a",
    "For Whom the Bell Tolls. By ernest hemingway. Category: Literature & Fiction, Classics",
    "GoldenEye (1995). Genres: Action Adventure Thriller",
    "Mae Ploy Thai Green Curry Paste - 14 oz jar",
    "日本語のタイトル",
    "Line one\nline two\ttabbed",
    "Four Rooms (1995). Genres: Thriller",
    "?!",
]


@pytest.fixture(scope="module")
def minilm():
    return TextEncoder("minilm", device="cpu", batch_size=8)


@pytest.fixture(scope="module")
def minilm_vectors(minilm):
    return minilm.encode(TEXTS, progress=False)


@pytest.fixture(scope="module")
def hand_states():
    """Unpadded last hidden states of each text, computed with transformers directly."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm_path())
    model = AutoModel.from_pretrained(minilm_path()).eval()
    with torch.inference_mode():
        return [
            model(**tokenizer(t, truncation=True, max_length=256, return_tensors="pt"))
            .last_hidden_state[0]
            .clone()
            for t in TEXTS
        ]


def test_minilm_matches_sentence_transformers(minilm, minilm_vectors):
    from sentence_transformers import SentenceTransformer

    assert len(minilm.tokenizer(LONG)["input_ids"]) > 256  # truncated to 256 on both sides
    reference = SentenceTransformer(str(minilm_path()), device="cpu").encode(TEXTS)
    assert minilm_vectors.dtype == torch.float32 and minilm_vectors.device.type == "cpu"
    assert minilm_vectors.shape == (len(TEXTS), 384) == (len(TEXTS), minilm.dim)
    torch.testing.assert_close(minilm_vectors, torch.from_numpy(reference), atol=1e-5, rtol=0)


def test_minilm_follows_its_sentence_transformers_folder(minilm):
    assert (minilm.pooling, minilm.normalize, minilm.max_length) == ("mean", True, 256)
    assert repr(minilm) == (
        "TextEncoder(model='minilm', pooling='mean', normalize=True, max_length=256, "
        "batch_size=8, dtype=float32, device='cpu')"
    )


@pytest.mark.parametrize("pooling", ["cls", "last_token", "mean"])
def test_pooling_matches_a_hand_computation(pooling, hand_states):
    encoder = TextEncoder("minilm", pooling=pooling, normalize=False, device="cpu", batch_size=8)
    got = encoder.encode(TEXTS, progress=False)
    pick = {
        "cls": lambda h: h[0],
        "last_token": lambda h: h[-1],
        "mean": lambda h: h.mean(dim=0),
    }[pooling]
    expected = torch.stack([pick(h) for h in hand_states])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_normalize_on_and_off(minilm_vectors):
    raw = TextEncoder("minilm", normalize=False, device="cpu").encode(TEXTS, progress=False)
    norms = raw.norm(dim=1)
    assert (norms - 1).abs().max() > 0.1
    torch.testing.assert_close(F.normalize(raw, dim=1), minilm_vectors, atol=1e-5, rtol=0)
    torch.testing.assert_close(minilm_vectors.norm(dim=1), torch.ones(len(TEXTS)))


def test_order_is_restored_after_length_sorting(minilm, minilm_vectors):
    some = [0, 1, 4, 5, 8, 16]  # padding to a batch's longest text changes nothing
    one_by_one = torch.cat([minilm.encode([TEXTS[i]], progress=False) for i in some])
    torch.testing.assert_close(minilm_vectors[some], one_by_one, atol=1e-5, rtol=0)
    reversed_batch = minilm.encode(TEXTS[::-1], progress=False)
    torch.testing.assert_close(reversed_batch.flip(0), minilm_vectors, atol=1e-5, rtol=0)
    assert minilm.encode([], progress=False).shape == (0, 384)


@pytest.mark.parametrize("side", ["right", "left"])
def test_last_token_pooling_handles_left_and_right_padding(side):
    hidden = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    mask = right if side == "right" else right.flip(1)
    last = pool(hidden, mask, "last_token")
    expected = [hidden[0, 1], hidden[1, 3]] if side == "right" else [hidden[0, 3], hidden[1, 3]]
    torch.testing.assert_close(last, torch.stack(expected))
    mean = pool(hidden, mask, "mean")
    torch.testing.assert_close(mean[0], hidden[0][mask[0].bool()].mean(0))


def test_identity_names_what_changes_the_vectors(minilm):
    base = minilm.identity()
    assert base == TextEncoder("minilm", device="cpu", batch_size=3).identity()
    assert len(base["weights_sha256"]) == 64 and base["model"] == minilm_path().name
    assert base["dtype"] == "float32" and base["revision"] is None
    changed = [
        TextEncoder("minilm", pooling="cls").identity(),
        TextEncoder("minilm", max_length=128).identity(),
        TextEncoder("minilm", normalize=False).identity(),
    ]
    assert [c["pooling"] for c in changed] == ["cls", "mean", "mean"]
    assert [c["max_length"] for c in changed] == [256, 128, 256]
    assert all(c != base for c in changed)
    fresh = TextEncoder("minilm")
    fresh.identity()
    assert fresh._model is None  # identity needs the tokenizer only


def test_identity_ignores_where_the_folder_lives(tmp_path):
    """Another checkout or virtual environment with the same files shares cache keys."""
    copy = tmp_path / "elsewhere" / minilm_path().name
    shutil.copytree(minilm_path(), copy)
    assert TextEncoder(str(copy)).identity() == TextEncoder("minilm").identity()
    (copy / "model.safetensors").write_bytes(b"changed")
    assert TextEncoder(str(copy)).identity() != TextEncoder("minilm").identity()


def test_plain_transformers_folder_uses_the_defaults(tmp_path):
    """Without sentence-transformers files: mean pooling, no normalisation, 512 tokens."""
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        (tmp_path / name).symlink_to(minilm_path() / name)
    encoder = TextEncoder(str(tmp_path), device="cpu")
    identity = encoder.identity()
    assert (identity["pooling"], identity["normalize"], identity["max_length"]) == (
        "mean",
        False,
        512,
    )
    assert identity["weights_sha256"] == TextEncoder("minilm").identity()["weights_sha256"]
    assert encoder.encode(["Heat"], progress=False).norm() > 1.5


def st_folder(path, pooling: dict, normalize: bool, max_seq_length: int):
    """A sentence-transformers folder over MiniLM's files with the given module settings."""
    for name in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json"):
        (path / name).symlink_to(minilm_path() / name)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
    ]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "a.b.Normalize"})
    (path / "modules.json").write_text(json.dumps(modules))
    (path / "1_Pooling").mkdir()
    (path / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    (path / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": max_seq_length}))
    return str(path)


@pytest.mark.parametrize(
    ("pooling", "expected"),
    [
        ({"pooling_mode_cls_token": True, "pooling_mode_mean_tokens": False}, "cls"),
        ({"pooling_mode_lasttoken": True}, "last_token"),
        ({"pooling_mode": "cls"}, "cls"),
        ({"pooling_mode": ["lasttoken"]}, "last_token"),
        ({"pooling_mode": "mean"}, "mean"),
    ],
)
def test_sentence_transformers_settings_are_followed(pooling, expected, tmp_path):
    identity = TextEncoder(st_folder(tmp_path, pooling, False, 128)).identity()
    assert (identity["pooling"], identity["normalize"], identity["max_length"]) == (
        expected,
        False,
        128,
    )
    explicit = TextEncoder(str(tmp_path), pooling="mean", normalize=True, max_length=64)
    assert (explicit.pooling, explicit.normalize, explicit.max_length) == ("mean", True, 64)


def test_unsupported_sentence_transformers_pooling_says_what_to_set(tmp_path):
    folder = st_folder(tmp_path, {"pooling_mode_max_tokens": True}, True, 128)
    with pytest.raises(
        ValueError, match=r"pooling \['max_tokens'\] is not supported.*encoder.pooling"
    ):
        TextEncoder(folder).identity()
    assert TextEncoder(folder, pooling="cls").identity()["normalize"] is True


def test_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="encoder.model='/no/such/model': no such folder"):
        TextEncoder("/no/such/model").identity()
    with pytest.raises(ValueError, match="encoder.model='no-such-org/no-such-model'.*local"):
        TextEncoder("no-such-org/no-such-model").identity()
    with pytest.raises(ValueError, match="not a transformers model folder"):
        TextEncoder(str(tmp_path)).identity()
    with pytest.raises(ValueError, match="encoder.pooling must be one of"):
        TextEncoder(pooling="max")
    with pytest.raises(ValueError, match="encoder.dtype='float16' needs a CUDA device"):
        TextEncoder(dtype="float16", device="cpu")
    with pytest.raises(ValueError, match="encoder.dtype must be"):
        TextEncoder(dtype="int8")
    with pytest.raises(ValueError, match="encoder.batch_size"):
        TextEncoder(batch_size=0)
