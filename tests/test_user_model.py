"""A user's own network (issue 27): a factory returning an nn.Module, its dropout modules found as slots."""

import importlib
import inspect
import json
import linecache
import logging
import math
import sys
import textwrap
import types

import pytest
import torch
from conftest import prepared
from torch import nn

from dropoutlab.cli import main
from dropoutlab.errors import DropoutlabError
from dropoutlab.layers.kinds import AlphaDropout, SpatialDropout
from dropoutlab.models import build_network, find_slots
from dropoutlab.models.user import register_factory
from dropoutlab.runs import RunSpec, run_id
from dropoutlab.store import Store
from dropoutlab.study import define_study, expand_runs, load_study, run_study
from dropoutlab.study.settings import parse_settings
from dropoutlab.train import train_runs
from dropoutlab.train.checkpoints import Checkpoint

CPU = torch.device("cpu")


class SmallCNN(nn.Module):
    """Two dropout modules: channel dropout on images, dropout on feature vectors."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Dropout2d(0.1))
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(4 * 64, width), nn.ReLU(), nn.Dropout(0.2),
                                  nn.Linear(width, 10))  # fmt: skip

    def forward(self, x):
        return self.head(self.features(x))


def make_cnn(width: int = 16) -> nn.Module:
    return SmallCNN(width)


def make_five_logits() -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 5))


def make_text() -> str:
    return "not a network"


CNN = register_factory(make_cnn)


def user_run(seed=0, **overrides) -> RunSpec:
    raw = {"dataset": "digits", "model": CNN, "epochs": 3, "batch_size": 64, **overrides}
    settings = parse_settings(raw)
    return RunSpec(run_id("t", settings, seed), "t", settings, seed, {})


def test_find_slots_names_every_torch_dropout_module_by_its_path():
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.dropout = nn.Dropout(0.1)
            self.pair = nn.ModuleList([nn.Dropout1d(0.2), nn.AlphaDropout(0.3)])

    net = nn.Sequential(nn.Dropout2d(0.4), Block(), nn.Sequential(nn.Dropout3d(0.5), nn.FeatureAlphaDropout(0.6)),
                        nn.Linear(2, 2))  # fmt: skip
    slots = find_slots(net)
    assert list(slots) == ["0", "1.dropout", "1.pair.0", "1.pair.1", "2.0", "2.1"]
    assert [m.p for m in slots.values()] == [0.4, 0.1, 0.2, 0.3, 0.5, 0.6]


def test_a_slot_key_sets_its_rate_and_dropout_rate_every_slot():
    assert user_run().settings.dropout == {"features.2": 0.1, "head.3": 0.2}  # the factory's own rates
    assert user_run(dropout={"rate": 0.3}).settings.dropout == {"features.2": 0.3, "head.3": 0.3}
    # a grid key arrives nested ("dropout.head.3" split at its dots); a quoted key as it is
    assert user_run(dropout={"head": {"3": 0.5}}).settings.dropout == {"features.2": 0.1, "head.3": 0.5}
    assert user_run(dropout={"head.3": 0.0}).settings.dropout["head.3"] == 0.0
    # a table's quoted slot and a grid's nested key of the same slot meet: the kind keeps the rate
    both = user_run(dropout={"head.3": 0.3, "head": {"3": {"kind": "alpha"}}}).settings
    assert both.dropout["head.3"] == 0.3 and both.kind_of("head.3") == "alpha"
    model = build_network(user_run(dropout={"rate": 0.3, "head.3": 0.0}).settings, (1, 8, 8), 10)
    assert (model.features[2].p, model.head[3].p) == (0.3, 0.0)
    assert isinstance(model.features[2], nn.Dropout2d)  # standard keeps the factory's own module


def test_an_unknown_slot_is_refused_naming_the_slots_found():
    with pytest.raises(
        DropoutlabError, match=r"dropout.head.4: unknown slot .*did you mean 'head.3'.*features.2, head.3"
    ):
        user_run(dropout={"head.4": 0.5})


def test_a_kind_replaces_the_module_by_dropoutlabs_as_patch_module_does():
    s = user_run(
        dropout={"head.3": {"rate": 0.25, "kind": "alpha"}, "features.2": {"kind": "spatial"}}
    ).settings
    model = build_network(s, (1, 8, 8), 10)
    assert (
        isinstance(model.head[3], AlphaDropout) and model.head[3].p == 0.25 and model.head[3].slot == "head.3"
    )
    assert isinstance(model.features[2], SpatialDropout) and model.features[2].p == 0.1
    assert model(torch.zeros(3, 1, 8, 8)).shape == (3, 10)


def test_a_kind_that_makes_no_sense_at_the_slot_is_refused_in_one_line():
    with pytest.raises(DropoutlabError) as caught:
        user_run(dropout={"head.3": {"kind": "spatial"}})
    message = str(caught.value)
    assert "\n" not in message
    assert "dropout.head.3: kind 'spatial' needs image activations" in message
    assert "sits on feature vectors" in message and "allowed there: standard" in message
    with pytest.raises(DropoutlabError, match="dropout.features.2: kind 'alpha' needs feature vectors"):
        user_run(dropout={"features.2": {"kind": "alpha"}})


def test_a_model_whose_output_does_not_fit_the_classes_is_refused():
    register_factory(make_five_logits)
    with pytest.raises(
        DropoutlabError, match=r"returns \(2, 5\) .* 10 classes, so the model must return logits"
    ):
        user_run(model=f"{__name__}:make_five_logits")
    register_factory(make_text)
    with pytest.raises(DropoutlabError, match="returned str, not an nn.Module"):
        user_run(model=f"{__name__}:make_text")


def test_a_factory_that_cannot_be_found_or_named_is_refused_in_one_line(tmp_path):
    with pytest.raises(DropoutlabError, match="cannot import 'no_such_module_here'.*PYTHONPATH"):
        user_run(model="no_such_module_here:make_net")
    with pytest.raises(DropoutlabError, match="is not a factory path"):
        user_run(model="nets:make net")
    with pytest.raises(DropoutlabError, match="your own network as 'module:function'"):
        user_run(model="nets.make_net")  # a dot where the colon goes
    with pytest.raises(DropoutlabError, match="a lambda has no name"):
        define_study("x", dataset="digits", model=lambda: nn.Linear(64, 10))
    with pytest.raises(
        DropoutlabError, match=r"a SmallCNN network, not a factory; .* pass its class or a function"
    ):
        define_study("x", dataset="digits", model=SmallCNN())
    with pytest.raises(DropoutlabError, match=r"make_cnn\(widht=8\) raised TypeError"):
        user_run(model={"factory": CNN, "widht": 8})


def test_the_factory_is_called_after_seeding_so_the_seed_fixes_the_weights(digits):
    def first_weights(seed):
        run = user_run(seed, epochs=1)
        result = train_runs([run], prepared(digits, run), CPU, "single", keep_weights=True)[0]
        return result.history, result.test_acc

    assert first_weights(0) == first_weights(0)
    assert first_weights(0) != first_weights(1)


def test_a_user_model_trains_through_the_loop_with_early_stopping_restore_best_and_mc_dropout(digits):
    run = user_run(epochs=6, early_stopping={"patience": 1, "monitor": "val_acc"}, mc_samples=[3],
                   optimizer={"name": "sgd", "lr": 0.5})  # fmt: skip
    result = train_runs([run], prepared(digits, run), CPU, "single")[0]
    assert result.status == "completed" and result.env["engine"] == "single"
    assert result.kept_epoch == result.best_epoch <= result.stopped_epoch
    accs = [r.val_acc for r in result.history]
    assert accs[result.best_epoch - 1] == max(accs)
    assert [entry["samples"] for entry in result.mc] == [0, 3]
    assert result.mc[0]["acc"] == pytest.approx(result.test_acc)  # the deterministic pass is the test


def test_a_diverging_user_model_is_marked_diverged(digits):
    run = user_run(epochs=3, optimizer={"name": "sgd", "lr": 1e30})
    result = train_runs([run], prepared(digits, run), CPU, "single")[0]
    assert result.status == "diverged" and result.test_acc is None


def test_a_user_model_resumes_from_its_checkpoint_as_if_never_interrupted(digits, tmp_path):
    run = user_run(epochs=4, dropout={"rate": 0.3})
    data = prepared(digits, run)
    reference = train_runs([run], data, CPU, "single")[0]
    checkpoint = Checkpoint(tmp_path / "ckpt", every=1)

    def stop_after_two(epoch, members):
        if epoch == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_runs([run], data, CPU, "single", on_epoch=stop_after_two, checkpoint=checkpoint)
    resumed = train_runs([run], data, CPU, "single", checkpoint=checkpoint)[0]
    assert resumed.history == reference.history and resumed.test_acc == reference.test_acc


NETS = """
from torch import nn


class Net(nn.Module):
    def __init__(self, width):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, width), nn.ReLU(), nn.Dropout(0.5))
        self.out = nn.Linear(width, 10)

    def forward(self, x):
        return self.out(self.body(x))


def make_net(width=32):
    return Net(width)
"""

STUDY = """
name = "own"
dataset = "digits"
epochs = 1
seeds = [0]
eval_train = false

[model]
factory = "{module}:make_net"
width = 8

[[grid]]
"dropout.body.3" = [0.0, 0.5]
"model.width" = [8, 12]
"""


@pytest.fixture
def own_study(tmp_path, request):
    """A study file naming a factory in a module beside it (a name of its own: modules are cached)."""
    module = f"nets_{request.node.name.replace('[', '_').replace(']', '_')}"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(NETS))
    path = tmp_path / "own.toml"
    path.write_text(textwrap.dedent(STUDY.format(module=module)))
    yield path, module
    sys.modules.pop(module, None)


def test_a_study_file_naming_a_factory_beside_it_runs_and_stores_each_slot(own_study, tmp_path):
    path, module = own_study
    study = load_study(path)
    runs = expand_runs(study)
    assert len(runs) == 4 and {r.settings.model for r in runs} == {f"{module}:make_net"}
    assert {(r.params["dropout.body.3"], r.params["model.width"]) for r in runs} == {
        (0.0, 8), (0.0, 12), (0.5, 8), (0.5, 12)}  # fmt: skip
    with Store(tmp_path / "s.db") as store:
        outcome = run_study(study, store, progress=False, workers=1)
        frame = store.runs("own")
    assert outcome.statuses["completed"] == 4
    assert outcome.plan_notes == []  # a factory's runs of one width stack (train/functional.py)
    assert sorted(zip(frame["dropout.body.3"], frame["model.width"], strict=True)) == [
        (0.0, 8), (0.0, 12), (0.5, 8), (0.5, 12)]  # fmt: skip
    assert frame["test_acc"].between(0, 1).all()


def test_the_definition_keeps_the_factory_its_source_hash_and_repr(own_study):
    path, module = own_study
    model = load_study(path).definition()["identity"]["model"]
    assert model["factory"] == f"{module}:make_net"
    assert len(model["source_sha256"]) == 64
    assert "Linear(in_features=64, out_features=8" in model["repr"]  # the study's first point: width 8


def test_a_changed_model_under_the_same_name_is_refused_and_replace_archives(tmp_path):
    def make_net():
        return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))

    def changed():
        return nn.Sequential(nn.Flatten(), nn.Dropout(0.1), nn.Linear(64, 10))

    changed.__qualname__ = make_net.__qualname__  # the same import path, another network
    keys = {"dataset": "digits", "epochs": 1, "seeds": [0], "eval_train": False}
    with Store(tmp_path / "s.db") as store:
        run_study(define_study("mine", model=make_net, **keys), store, progress=False, workers=1)
        study = define_study("mine", model=changed, **{**keys, "seeds": [0, 1]})
        with pytest.raises(
            DropoutlabError,
            match=r"the model changed \(identity.model\): repr was Sequential\( \(0\): Flatten",
        ):
            run_study(study, store, progress=False, workers=1)
        assert len(store.runs("mine")) == 1  # nothing trained
        run_study(study, store, progress=False, workers=1, replace=True)
        assert len(store.runs("mine")) == 2
        assert len(store.runs("mine@archived-1")) == 1


def test_a_factory_without_source_is_checked_by_its_repr_alone(caplog):
    scope = {"nn": nn}
    exec("def no_source():\n    return nn.Sequential(nn.Flatten(), nn.Linear(64, 10))", scope)
    scope["no_source"].__module__ = __name__
    with caplog.at_level(logging.WARNING):
        study = define_study("typed", dataset="digits", model=scope["no_source"])
    model = study.definition()["identity"]["model"]
    assert model["source_sha256"] is None and model["repr"].startswith("Sequential(")
    assert "checks the model's repr alone" in caplog.text


def test_the_source_hash_follows_the_forward_of_the_users_classes(own_study, monkeypatch):
    from dropoutlab.models.user import resolve_factory, source_sha256

    path, module = own_study
    make = resolve_factory(f"{module}:make_net", path.parent)
    before = source_sha256(make, make())
    source = path.parent / f"{module}.py"
    source.write_text(
        source.read_text().replace("return self.out(self.body(x))", "return self.out(self.body(2 * x))")
    )
    monkeypatch.syspath_prepend(str(path.parent))
    fresh = importlib.reload(sys.modules[module])  # as a new process would import it
    assert source_sha256(fresh.make_net, fresh.make_net()) != before  # the factory itself is unchanged


def test_a_notebook_class_without_a_source_file_counts_by_its_methods_source():
    from dropoutlab.models.user import source_sha256

    def cell(number, body):
        """A class defined as a notebook cell defines it: its module has no file, its lines are in linecache."""
        text = (
            f"from torch import nn\nclass Net(nn.Module):\n    def forward(self, x):\n        return {body}\n"
        )
        filename = f"<cell-{number}>"
        linecache.cache[filename] = (len(text), None, text.splitlines(True), filename)
        module = types.ModuleType(f"cell_module_{number}")
        exec(compile(text, filename, "exec"), module.__dict__)
        return module.Net

    first, again, changed = cell(1, "x + 1"), cell(2, "x + 1"), cell(3, "x + 2")
    with pytest.raises((OSError, TypeError)):
        inspect.getsource(first)
    assert source_sha256(make_cnn, first()) == source_sha256(make_cnn, again())
    assert source_sha256(make_cnn, first()) != source_sha256(make_cnn, changed())


def test_the_models_command_lists_slots_rates_and_parameters(own_study, monkeypatch, capsys):
    path, module = own_study
    monkeypatch.chdir(path.parent)
    assert main(["models", f"{module}:make_net", "--dataset", "digits", "--arg", "width=8"]) == 0
    out = capsys.readouterr().out
    assert "body.1 (Linear)" in out and f"{64 * 8 + 8:>12,}" in out
    assert f"Total params: {64 * 8 + 8 + 8 * 10 + 10:,}" in out
    assert "body.3" in out and "Dropout" in out and "rate 0.5" in out and "feature vectors" in out


def test_report_and_export_read_the_store_without_importing_the_users_code(own_study, tmp_path, capsys):
    path, module = own_study
    with Store(tmp_path / "s.db") as store:
        run_study(load_study(path), store, progress=False, workers=1)
    (path.parent / f"{module}.py").unlink()
    sys.modules.pop(module, None)
    store = str(tmp_path / "s.db")
    assert main(["export", "--store", store, "--format", "json"]) == 0
    exported = json.loads(capsys.readouterr().out)
    assert {run["spec"]["model"] for run in exported["runs"]} == {f"{module}:make_net"}
    assert main(["report", "--study", "own", "--store", store, "--out", str(tmp_path / "report")]) == 0
    assert module not in sys.modules


def test_a_class_is_a_factory_too():
    study = define_study("cls", dataset="digits", model={"factory": SmallCNN, "width": 8})
    (run,) = expand_runs(study)[:1]
    assert run.settings.model == f"{__name__}:SmallCNN" and run.settings.factory_args == {"width": 8}
    assert study.definition()["identity"]["model"]["source_sha256"] is not None
    assert isinstance(build_network(run.settings, (1, 8, 8), 10), SmallCNN)


def test_define_study_takes_a_callable_and_factory_arguments():
    study = define_study("py", dataset="digits", model={"factory": make_cnn, "width": 8}, seeds=2,
                         grid={"dropout.head.3": [0.0, 0.5], "model.width": [8, 12]})  # fmt: skip
    runs = expand_runs(study)
    assert len(runs) == 8
    assert {r.settings.factory_args["width"] for r in runs} == {8, 12}
    assert study.definition()["settings"]["model"] == {"factory": CNN, "width": 8}
    assert math.isclose(runs[0].settings.dropout["features.2"], 0.1)


def test_a_block_size_at_a_users_dotted_slot_that_is_not_dropblock_is_refused():
    with pytest.raises(
        DropoutlabError, match=r"dropout.head.3.block_size: only kind 'dropblock'.*'standard'"
    ):
        define_study("bs", dataset="digits", model=make_cnn, grid={"dropout.head.3.block_size": [3]})
    study = define_study("bs", dataset="digits", model=make_cnn,
                         grid={"dropout.features.2.kind": ["dropblock"], "dropout.features.2.block_size": [3]})  # fmt: skip
    assert expand_runs(study)[0].settings.slot_options == {"features.2": {"block_size": 3}}


def test_concrete_dropout_at_a_users_slot_learns_its_rate(digits):
    run = user_run(epochs=2, dropout={"head.3": {"rate": 0.3, "kind": "concrete"}, "features.2": 0.0})
    result = train_runs([run], prepared(digits, run), CPU, "single")[0]
    assert [(epoch, slot) for epoch, slot, _ in result.learned_rates] == [(1, "head.3"), (2, "head.3")]
    assert all(0 < rate < 1 and rate != 0.3 for _, _, rate in result.learned_rates)


def test_the_own_model_example_names_a_factory_beside_it():
    from pathlib import Path

    path = Path(__file__).resolve().parent.parent / "examples" / "own_model" / "study.toml"
    study = load_study(path)
    runs = expand_runs(study)
    assert len(runs) == 4 * 5 and len(study.seeds) == 5
    assert study.definition()["identity"]["model"]["factory"] == "own_nets:make_cnn"
    assert {slot for run in runs for slot in run.settings.dropout} == {"drop_conv", "drop_dense"}
    assert {(r.params["dropout.drop_conv"], r.params["dropout.drop_dense"]) for r in runs} == {
        (0.0, 0.0), (0.0, 0.5), (0.2, 0.0), (0.2, 0.5)}  # fmt: skip


class TanhNet(nn.Module):
    """The study file's network with tanh: the same slot (body.3) and argument (width)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(64, width), nn.Tanh(), nn.Dropout(0.3))
        self.out = nn.Linear(width, 10)

    def forward(self, x):
        return self.out(self.body(x))


def make_tanh_net(width: int = 32) -> nn.Module:
    return TanhNet(width)


def test_load_study_takes_the_model_from_python_keeping_the_files_arguments(own_study):
    path, module = own_study
    study = load_study(path, model=make_tanh_net)
    runs = expand_runs(study)
    assert {r.settings.model for r in runs} == {f"{__name__}:make_tanh_net"}
    assert {r.settings.factory_args["width"] for r in runs} == {8, 12}  # the file's argument, then the grid's
    assert "Tanh()" in study.definition()["identity"]["model"]["repr"]
    with pytest.raises(
        DropoutlabError, match=r"dropout.body.3: unknown slot .* its slots: features.2, head.3"
    ):
        load_study(path, model=make_cnn)  # the file's grid names a slot this network lacks


def test_dropoutlab_run_trains_a_study_file_naming_a_factory_then_refuses_a_changed_one(
    own_study, tmp_path, capsys
):
    path, module = own_study
    store = str(tmp_path / "s.db")
    assert main(["run", str(path), "--store", store, "--no-progress", "--workers", "1"]) == 0
    assert "4 completed" in capsys.readouterr().out
    source = path.parent / f"{module}.py"
    source.write_text(source.read_text().replace("nn.ReLU()", "nn.GELU()"))
    sys.modules.pop(module, None)  # a new process would import the changed file
    assert main(["run", str(path), "--store", store, "--no-progress", "--workers", "1"]) == 2
    err = capsys.readouterr().err
    assert "the model changed (identity.model)" in err and "--replace" in err and err.count("\n") == 1


def test_dropconnect_at_a_slot_before_a_linear_masks_that_layers_weights(digits):
    from dropoutlab.layers.kinds import DropConnectLinear

    settings = user_run(dropout={"head.3": {"rate": 0.4, "kind": "dropconnect"}}).settings
    torch.manual_seed(0)
    plain = build_network(user_run().settings, (1, 8, 8), 10)
    torch.manual_seed(0)
    model = build_network(settings, (1, 8, 8), 10)
    assert isinstance(model.head[4], DropConnectLinear) and model.head[4].p == 0.4 and model.head[3].p == 0.0
    assert list(model.state_dict()) == list(plain.state_dict())  # the same parameters, the same names
    assert all(
        torch.equal(a, b)
        for a, b in zip(model.state_dict().values(), plain.state_dict().values(), strict=True)
    )
    run = user_run(epochs=1, dropout={"head.3": {"rate": 0.4, "kind": "dropconnect"}})
    assert train_runs([run], prepared(digits, run), CPU, "single")[0].status == "completed"
    with pytest.raises(
        DropoutlabError, match="dropout.features.2: kind 'dropconnect' needs a dense layer right after"
    ):
        user_run(dropout={"features.2": {"rate": 0.4, "kind": "dropconnect"}})


def test_a_users_mlp_trains_on_feature_vectors_from_arrays(tmp_path):
    import numpy as np

    from dropoutlab.data import Data

    rng = np.random.default_rng(0)
    x = rng.normal(size=(240, 5)).astype("float32")
    y = (x[:, 0] > 0).astype(int) + (x[:, 1] > 0.5)
    data = Data.from_arrays(x[:180], y[:180], x[180:], y[180:], name="user-model-features")

    def make_mlp(width=16):
        return nn.Sequential(nn.Linear(5, width), nn.ReLU(), nn.Dropout(0.1), nn.Linear(width, 3))

    study = define_study("features", dataset=data.name, model=make_mlp, seeds=[0], epochs=2, normalize="standard",
                         grid={"dropout.2": [0.0, 0.3]})  # fmt: skip
    assert all(run.settings.dropout.keys() == {"2"} for run in expand_runs(study))
    with Store(tmp_path / "s.db") as store:
        outcome = run_study(study, store, progress=False, workers=1, data=data)
    assert outcome.statuses["completed"] == 2
    with pytest.raises(DropoutlabError, match="dropout.2: kind 'spatial' needs image activations"):
        define_study("features", dataset=data.name, model=make_mlp, dropout={"2": {"kind": "spatial"}})
