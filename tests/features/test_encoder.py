"""TextEncoder against sentence-transformers and hand computations from transformers.

The real all-MiniLM-L6-v2 (a sentence-transformers folder) and a tiny randomly
initialised BERT saved as a plain transformers folder, on real Amazon Movies titles.
"""

import csv
import itertools
import shutil

import pytest
import torch
import torch.nn.functional as F

from gnnrec.features import TextEncoder
from gnnrec.features.encoder import IDENTITY_VERSION, minilm_path

pytestmark = pytest.mark.usefixtures("offline_hub")

LONG = " ".join(f"word{i} of a very long product description" for i in range(80))
EDGE_CASES = ["", " ", LONG, "Ünïcödé títle — “quotes” ✓", "日本語のタイトル", "?!"]


@pytest.fixture(scope="module")
def texts(data_root):
    """The first 30 Amazon Movies titles (real item texts) and a few edge cases."""
    with open(data_root / "amazon-books-cds-movies" / "movies.item.csv", newline="") as f:
        titles = [row["title"] for row in itertools.islice(csv.DictReader(f), 30)]
    return titles + EDGE_CASES


@pytest.fixture(scope="module")
def minilm():
    return TextEncoder("minilm", device="cpu", batch_size=8)


@pytest.fixture(scope="module")
def minilm_vectors(minilm, texts):
    return minilm.encode(texts, progress=False)


def hand_encode(folder, texts, pooling, max_length, normalize):
    """AutoModel's last hidden states of each text alone (no padding), pooled by hand."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    pick = {"cls": lambda h: h[0], "last_token": lambda h: h[-1], "mean": lambda h: h.mean(0)}
    with torch.inference_mode():
        rows = [
            pick[pooling](
                model(
                    **tokenizer(t, truncation=True, max_length=max_length, return_tensors="pt")
                ).last_hidden_state[0]
            )
            for t in texts
        ]
    out = torch.stack(rows)
    return F.normalize(out, dim=1) if normalize else out


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    """A randomly initialised 2-layer BERT (64 positions) saved as a plain transformers folder."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny") / "tiny-bert"
    tokenizer = BertTokenizerFast(vocab_file=str(minilm_path() / "vocab.txt"), do_lower_case=True)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_minilm_equals_sentence_transformers(minilm, minilm_vectors, texts):
    from sentence_transformers import SentenceTransformer

    assert len(minilm.tokenizer(LONG)["input_ids"]) > 256  # truncated to 256 on both sides
    reference = SentenceTransformer(str(minilm_path()), device="cpu").encode(
        texts, batch_size=8, convert_to_tensor=True
    )
    assert minilm_vectors.dtype == torch.float32 and minilm_vectors.device.type == "cpu"
    assert minilm_vectors.shape == (len(texts), 384) == (len(texts), minilm.dim)
    assert (minilm_vectors - reference).abs().max().item() <= 1e-6
    assert (minilm.pooling, minilm.normalize, minilm.max_length) == ("mean", True, 256)
    assert minilm.encode([], progress=False).shape == (0, 384)


def test_minilm_equals_a_hand_computation(minilm_vectors, texts):
    """Length-sorted batching and padding change nothing: each text alone gives the same."""
    expected = hand_encode(minilm_path(), texts, "mean", 256, normalize=True)
    torch.testing.assert_close(minilm_vectors, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize(
    ("pooling", "normalize", "max_length"),
    [("cls", False, None), ("mean", None, 16), ("last_token", False, 16)],
)
def test_explicit_settings_override_the_folder(pooling, normalize, max_length, texts):
    encoder = TextEncoder(
        "minilm", pooling=pooling, normalize=normalize, max_length=max_length, device="cpu"
    )
    got = encoder.encode(texts, progress=False)
    length = max_length or 256
    expected = hand_encode(minilm_path(), texts, pooling, length, normalize is not False)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)
    assert (encoder.pooling, encoder.normalize, encoder.max_length) == (
        pooling,
        normalize is not False,
        length,
    )


def test_normalize_on_and_off(minilm_vectors, texts):
    raw = TextEncoder("minilm", normalize=False, device="cpu").encode(texts, progress=False)
    assert (raw.norm(dim=1) - 1).abs().min() > 0.1
    torch.testing.assert_close(F.normalize(raw, dim=1), minilm_vectors, atol=1e-6, rtol=0)
    on = TextEncoder("minilm", normalize=True, device="cpu").encode(texts, progress=False)
    torch.testing.assert_close(on, minilm_vectors, atol=1e-6, rtol=0)


def test_plain_transformers_folder_gets_the_defaults(tiny_bert, texts):
    """No modules.json: mean pooling, no normalisation, max_position_embeddings tokens."""
    encoder = TextEncoder(str(tiny_bert), device="cpu", batch_size=4)
    got = encoder.encode(texts, progress=False)
    assert (encoder.pooling, encoder.normalize, encoder.max_length, encoder.dim) == (
        "mean",
        False,
        64,
        32,
    )
    assert len(encoder.tokenizer(LONG)["input_ids"]) > 64
    expected = hand_encode(tiny_bert, texts, "mean", 64, normalize=False)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


@pytest.mark.parametrize("pooling", ["mean", "cls", "last_token"])
def test_plain_transformers_folder_pooling(pooling, tiny_bert, texts):
    encoder = TextEncoder(str(tiny_bert), pooling=pooling, normalize=True, device="cpu")
    got = encoder.encode(texts, progress=False)
    assert encoder.pooling == pooling
    expected = hand_encode(tiny_bert, texts, pooling, 64, normalize=True)
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=0)


def test_sentence_transformers_folder_modules_and_overrides(tiny_bert, tmp_path, texts):
    """A saved sentence-transformers pipeline is followed; explicit settings replace it."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    folder = tmp_path / "st-tiny"
    modules = [Transformer(str(tiny_bert), max_seq_length=12), Pooling(32, "cls"), Normalize()]
    SentenceTransformer(modules=modules, device="cpu").save(str(folder))
    own = TextEncoder(str(folder), device="cpu")
    assert (own.pooling, own.normalize, own.max_length) == ("cls", True, 12)
    reference = SentenceTransformer(str(folder), device="cpu").encode(texts, batch_size=256)
    assert (own.encode(texts, progress=False) - torch.from_numpy(reference)).abs().max() <= 1e-6
    mean = TextEncoder(str(folder), pooling="mean", normalize=False, max_length=20, device="cpu")
    expected = hand_encode(tiny_bert, texts, "mean", 20, normalize=False)
    torch.testing.assert_close(mean.encode(texts, progress=False), expected, atol=1e-5, rtol=0)


def test_identity_is_stable_and_loads_nothing(tiny_bert, tmp_path):
    encoder = TextEncoder(str(tiny_bert))
    base = encoder.identity()
    assert encoder._model is None  # only files are hashed
    assert base["version"] == IDENTITY_VERSION and base["model"] == "tiny-bert"
    assert len(base["weights_sha256"]) == 64 and len(base["settings_sha256"]) == 64
    assert (base["dtype"], base["commit"], base["revision"]) == ("float32", None, None)
    same = TextEncoder(str(tiny_bert), batch_size=3, dtype="float32", device="cpu")
    assert same.identity() == base
    copy = tmp_path / "elsewhere" / "tiny-bert"  # another checkout with the same files
    shutil.copytree(tiny_bert, copy)
    assert TextEncoder(str(copy)).identity() == base


def test_identity_changes_with_what_changes_the_vectors(tiny_bert, tmp_path):
    from transformers import BertConfig, BertModel

    base = TextEncoder(str(tiny_bert)).identity()
    settings = [
        {"pooling": "cls"},
        {"pooling": "mean"},
        {"max_length": 16},
        {"normalize": True},
        {"normalize": False},
    ]
    identities = [TextEncoder(str(tiny_bert), **s).identity() for s in settings]
    assert len({str(sorted(i.items())) for i in [base, *identities]}) == len(settings) + 1
    retrained = tmp_path / "retrained" / "tiny-bert"
    shutil.copytree(tiny_bert, retrained)
    torch.manual_seed(1)
    BertModel(BertConfig.from_pretrained(tiny_bert)).save_pretrained(retrained)
    changed = TextEncoder(str(retrained)).identity()
    assert changed["weights_sha256"] != base["weights_sha256"]
    assert changed["settings_sha256"] == base["settings_sha256"]
    (retrained / "1_Pooling").mkdir()  # a module setting in a subfolder counts too
    (retrained / "1_Pooling" / "config.json").write_text('{"pooling_mode": "cls"}')
    assert TextEncoder(str(retrained)).identity()["settings_sha256"] != base["settings_sha256"]


def test_identity_covers_the_model_code_with_trust_remote_code(tiny_bert, tmp_path):
    from gnnrec.features import embedding_cache_key

    folder = tmp_path / "remote" / "tiny-bert"
    shutil.copytree(tiny_bert, folder)
    (folder / "modeling_tiny.py").write_text("SCALE = 1\n")
    base = TextEncoder(str(tiny_bert)).identity()
    assert "code_sha256" not in base  # keys of models without remote code stay as they were
    assert TextEncoder(str(folder)).identity() == base  # code that never runs does not count
    trusted = TextEncoder(str(folder), trust_remote_code=True).identity()
    assert {k: v for k, v in trusted.items() if k != "code_sha256"} == base
    assert len(trusted["code_sha256"]) == 64
    (folder / "modeling_tiny.py").write_text("SCALE = 2\n")  # an edited model
    edited = TextEncoder(str(folder), trust_remote_code=True).identity()
    assert edited["code_sha256"] != trusted["code_sha256"]
    assert embedding_cache_key(edited, ["a"]) != embedding_cache_key(trusted, ["a"])
    (folder / "sub").mkdir()  # code in a subfolder counts too
    (folder / "sub" / "layers.py").write_text("")
    assert TextEncoder(str(folder), trust_remote_code=True).identity() != edited


@pytest.mark.skipif(not torch.cuda.is_available(), reason="half precision needs CUDA")
def test_identity_and_vectors_with_half_precision(minilm_vectors, texts):
    half = TextEncoder("minilm", dtype="float16", device="cuda")
    assert half.identity()["dtype"] == "float16"
    assert half.identity() != TextEncoder("minilm", device="cuda", dtype="float32").identity()
    got = half.encode(texts, progress=False)
    assert got.dtype == torch.float32 and got.device.type == "cpu"
    torch.testing.assert_close(got, minilm_vectors, atol=5e-3, rtol=0)


def test_trust_remote_code_stays_off_unless_set(tiny_bert):
    assert TextEncoder(str(tiny_bert), device="cpu").model.trust_remote_code is False
    trusted = TextEncoder(str(tiny_bert), device="cpu", trust_remote_code=True)
    assert trusted.model.trust_remote_code is True


def test_clear_errors(tmp_path):
    with pytest.raises(ValueError, match="encoder.model='/no/such/model': no such folder"):
        TextEncoder("/no/such/model").identity()
    with pytest.raises(ValueError, match="encoder.model='no-such-org/no-such-model'.*local"):
        TextEncoder("no-such-org/no-such-model").identity()
    with pytest.raises(ValueError, match="neither modules.json nor config.json"):
        TextEncoder(str(tmp_path)).identity()
    with pytest.raises(ValueError, match=r"encoder.pooling must be one of \['mean', 'cls'"):
        TextEncoder(pooling="max")
    with pytest.raises(ValueError, match="encoder.dtype='float16' needs a CUDA device"):
        TextEncoder(dtype="float16", device="cpu")
    with pytest.raises(ValueError, match="encoder.dtype must be"):
        TextEncoder(dtype="int8")
    with pytest.raises(ValueError, match="encoder.batch_size"):
        TextEncoder(batch_size=0)
    with pytest.raises(ValueError, match="encoder.max_length"):
        TextEncoder(max_length=0)
