"""Matrix, configuration rows the other configuration tests do not cover: wrong types, the
platform's limits, non-ASCII, keys that collide as variables, and values no process can receive.

Missing, empty, not-JSON and list-shaped files, a missing ``current_host``, one not in ``hosts``,
empty ``hosts`` and a channel without its directory are in test_configuration_failures.py.
Every run here is checked by ``run_checked`` (conftest) for the invariants of docs/reliability.md.
"""

import ast
import json

import pytest

from sagemaker_mxnet_container.sm_variables import MAX_STRING_BYTES

RAN = "open(os.path.join(MARKERS, 'ran'), 'w').close()\n"


def write_raw_hyperparameters(job, values):
    """Hyperparameters exactly as given: the platform's JSON-in-string encoding is the caller's."""
    job.write_config("hyperparameters.json", {"sagemaker_program": '"train.py"', **values})


@pytest.mark.parametrize(
    "file, content, reason",
    [
        pytest.param(
            "resourceconfig.json",
            {"current_host": "algo-1", "hosts": "algo-1"},
            "'hosts' must be a non-empty list of host names, got 'algo-1'",
            id="hosts-a-string",
        ),
        pytest.param(
            "resourceconfig.json",
            {"current_host": 1, "hosts": ["algo-1"]},
            "'current_host' must be this host's name, got 1",
            id="current-host-a-number",
        ),
        pytest.param(
            "resourceconfig.json",
            {"current_host": "algo-1", "hosts": ["algo-1", "algo-1"]},
            "'hosts' lists a host more than once",
            id="host-listed-twice",
        ),
        pytest.param(
            "resourceconfig.json",
            {"current_host": "algo-1", "hosts": ["algo-1"], "network_interface_name": 0},
            "'network_interface_name' must be a string, got 0",
            id="interface-a-number",
        ),
        pytest.param(
            "inputdataconfig.json",
            {"train": ["File"]},
            "channel 'train' must map to a JSON object",
            id="channel-a-list",
        ),
        pytest.param(
            "inputdataconfig.json",
            {"../../etc": {}},
            "channel name '../../etc' may only use letters, digits",
            id="channel-name-climbing-out",
        ),
        pytest.param(
            "hyperparameters.json",
            {"sagemaker_program": "5"},
            "hyperparameter sagemaker_program must be a string, got 5",
            id="program-a-number",
        ),
        pytest.param(
            "hyperparameters.json",
            {"sagemaker_program": '"train.py"', "sagemaker_stop_grace_seconds": '"soon"'},
            "hyperparameter sagemaker_stop_grace_seconds must be a number of seconds",
            id="grace-not-a-number",
        ),
        pytest.param(
            "hyperparameters.json",
            {"sagemaker_program": '"train.py"', "sagemaker_container_log_level": '"LOUD"'},
            "sagemaker_container_log_level 'LOUD' is not a logging level",
            id="log-level-unknown",
        ),
        pytest.param(
            "hyperparameters.json",
            {"sagemaker_program": '"train.py"', "sagemaker_mode": '"fast"'},
            "hyperparameter sagemaker_mode must be one of legacy, script, got 'fast'",
            id="mode-unknown",
        ),
        pytest.param(
            "hyperparameters.json",
            '{"sagemaker_program": "\\"train.py\\"", "depth": ' + "[" * 100_000 + "]" * 100_000 + "}",
            "hyperparameters.json is not valid JSON: maximum recursion depth exceeded",
            id="nested-100000-deep",
        ),
        # Issue 16: each of these used to end as "Internal error" with a traceback, or worse.
        pytest.param(
            "hyperparameters.json",
            {"sagemaker_program": '"train.py"', "epochs": "5", "": '"x"', "lr": "0.1"},
            "hyperparameter '' has no name: its value would reach the script with no option before it",
            id="empty-name-shifts-the-arguments",
        ),
        pytest.param(
            "hyperparameters.json",
            {"sagemaker_program": '"train.py"', "-": '"x"'},
            "hyperparameter '-' would reach the script as '--', which ends its options",
            id="dash-name-shifts-the-arguments",
        ),
        pytest.param(
            "hyperparameters.json",
            {"sagemaker_program": '"train.py"', "sagemaker_container_log_level": '"--5"'},
            "sagemaker_container_log_level '--5' is not a logging level",
            id="log-level-two-minus-signs",
        ),
        pytest.param(
            "hyperparameters.json",
            {"sagemaker_program": '"train.py"', "sagemaker_container_log_level": '"\u00b2"'},
            "sagemaker_container_log_level '²' is not a logging level",
            id="log-level-superscript-digit",
        ),
        pytest.param(
            "hyperparameters.json",
            {"sagemaker_program": '"train.py"', "sagemaker_parameter_server_port": '"8\u00b2"'},
            "hyperparameter sagemaker_parameter_server_port must be a TCP port number, got '8²'",
            id="port-superscript-digit",
        ),
        pytest.param(
            "resourceconfig.json",
            {"current_host": "algo-1", "hosts": ["algo-1", "algo..2"]},
            "host name 'algo..2' is not a valid host name",
            id="host-empty-label",
        ),
        pytest.param(
            "resourceconfig.json",
            {"current_host": "algo-1", "hosts": ["algo-1", "a" * 300]},
            "host name '" + "a" * 60 + "...' is not a valid host name",
            id="host-300-character-label",
        ),
        pytest.param(
            "resourceconfig.json",
            {"current_host": "algo-1", "hosts": ["algo-1", "algo\u0000-2"]},
            "host name 'algo\\x00-2' is not a valid host name",
            id="host-with-nul",
        ),
        pytest.param(
            "resourceconfig.json",
            {"current_host": "algo-1", "hosts": ["algo-1"], "instance_groups": [{"hosts": ["algo-1"]}]},
            "every entry of 'instance_groups' must be an object with a string 'instance_group_name'",
            id="instance-group-without-name",
        ),
    ],
)
def test_configuration_of_the_wrong_shape_fails_before_any_code_runs(code_job, run_checked, file, content, reason):
    job = code_job(RAN)
    job.write_config(file, content)

    finished = run_checked(job, within=30)

    assert finished.exit_code == 1
    assert reason in finished.reason
    assert not (code_job.markers / "ran").exists()


# The platform's limits: 100 hyperparameters, keys of up to 256 characters, values of up to 2500.

ECHO = """
import json, sys
received = {
    "argv": sys.argv[1:],
    "hps": json.loads(os.environ["SM_HPS"]),
    "hp_variables": {k: v for k, v in os.environ.items() if k.startswith("SM_HP_")},
}
with open(os.path.join(os.environ["SM_MODEL_DIR"], "received.json"), "w") as stream:
    json.dump(received, stream)
"""


def received(job):
    return json.loads((job.model_dir / "received.json").read_text())


def test_100_hyperparameters_with_256_character_keys_and_values_reach_the_program(code_job, run_checked):
    values = {f"{index:03d}".ljust(256, "k"): f"{index:03d}".ljust(256, "v") for index in range(99)}
    job = code_job(ECHO)
    write_raw_hyperparameters(job, {key: json.dumps(value) for key, value in values.items()})

    finished = run_checked(job)

    assert finished.exit_code == 0, finished.stderr[-3000:]
    got = received(job)
    assert got["hps"] == values
    assert got["argv"] == [item for key in sorted(values) for item in (f"--{key}", values[key])]
    assert got["hp_variables"] == {f"SM_HP_{key.upper()}": value for key, value in values.items()}


def test_hyperparameters_at_the_platforms_largest_values_fail_clearly_before_any_code_runs(code_job, run_checked):
    # 100 x (256 + 2500) characters: more than Linux lets one environment variable hold, and
    # every hyperparameter travels in SM_HPS and SM_TRAINING_ENV. Without the check the program
    # failed to start with "Argument list too long" and advice about #! lines.
    job = code_job(RAN)
    write_raw_hyperparameters(job, {f"{i:03d}".ljust(256, "k"): json.dumps("v" * 2498) for i in range(99)})

    finished = run_checked(job, within=30)

    assert finished.exit_code == 1
    assert finished.reason.startswith("the variable SM_HPS takes ")
    assert f"more than the {MAX_STRING_BYTES} Linux passes in one program argument or environment variable" in (
        finished.reason
    )
    assert "put large hyperparameter values in a file" in finished.reason
    assert not (code_job.markers / "ran").exists()


NON_ASCII = {
    "学习率": 0.01,
    "optimiseur": "évolutif",
    "emoji": "🚀 launch",
    "rtl": "שלום",
    "combining": "e\u0301",
    "mixed": ["ü", {"ключ": "значение"}],
}


def test_non_ascii_keys_and_values_reach_the_program_unchanged(code_job, run_checked):
    job = code_job(ECHO, NON_ASCII)

    finished = run_checked(job)

    assert finished.exit_code == 0, finished.stderr[-3000:]
    got = received(job)
    assert got["hps"] == NON_ASCII
    pairs = dict(zip(got["argv"][::2], got["argv"][1::2], strict=True))
    assert pairs["--optimiseur"] == "évolutif"
    assert pairs["--emoji"] == "🚀 launch"
    assert ast.literal_eval(pairs["--mixed"]) == NON_ASCII["mixed"]
    assert got["hp_variables"]["SM_HP_OPTIMISEUR"] == "évolutif"
    assert got["hp_variables"]["SM_HP_学习率"] == got["hp_variables"]["SM_HP____"] == "0.01"


@pytest.mark.parametrize("first, second, variable", [("LR", "lr", "SM_HP_LR"), ("STRASSE", "straße", "SM_HP_STRASSE")])
def test_hyperparameters_that_upper_case_to_one_variable_fail_naming_both(
    code_job, run_checked, first, second, variable
):
    job = code_job(RAN, {first: 1, second: 2})

    finished = run_checked(job, within=30)

    assert finished.exit_code == 1
    assert finished.reason.startswith(f"hyperparameters {first!r} and {second!r} would both be passed as {variable}")
    assert not (code_job.markers / "ran").exists()


def test_keys_that_differ_only_in_punctuation_each_get_their_own_variable(code_job, run_checked):
    # SM_HP_LEARNING-RATE and SM_HP_LEARNING_RATE, as the official toolkit names them.
    job = code_job(ECHO, {"learning-rate": 1, "learning_rate": 2})

    finished = run_checked(job)

    assert finished.exit_code == 0, finished.stderr[-3000:]
    assert received(job)["hp_variables"] == {"SM_HP_LEARNING-RATE": "1", "SM_HP_LEARNING_RATE": "2"}


def test_channels_that_upper_case_to_one_variable_fail_naming_both(code_job, run_checked):
    job = code_job(RAN)
    for name in ("train", "TRAIN"):
        job.channel(name).mkdir()
    job.write_config("inputdataconfig.json", {"train": {}, "TRAIN": {}})

    finished = run_checked(job, within=30)

    assert finished.exit_code == 1
    assert finished.reason.startswith("channels 'TRAIN' and 'train' would both be passed as SM_CHANNEL_TRAIN")
    assert not (code_job.markers / "ran").exists()


def test_legacy_mode_forced_on_a_shell_script_fails_naming_it(make_job, run_checked):
    # It used to end as "Internal error: 'NoneType' object has no attribute 'loader'".
    job = make_job({"sagemaker_program": "train.sh", "sagemaker_mode": "legacy"})
    job.code_dir.mkdir()
    (job.code_dir / "train.sh").write_text("echo never\n")

    finished = run_checked(job, within=30)

    assert finished.exit_code == 1
    assert finished.reason.startswith("sagemaker_mode is legacy, but the entry point 'train.sh' is not a Python module")


def test_an_entry_point_too_deeply_nested_to_parse_fails_with_pythons_own_error(code_job, run_checked):
    # Mode detection used to raise RecursionError: an internal error with a traceback.
    job = code_job("def train():\n    pass\nx = " + "+".join(["1"] * 100_000) + "\n")

    finished = run_checked(job, within=60)

    assert finished.exit_code == 1
    assert finished.reason.startswith("train.py exited with code 1")
    assert "RecursionError: maximum recursion depth exceeded during compilation" in finished.failure
    assert "it is nested too deeply for Python's parser" in finished.stderr


@pytest.mark.parametrize(
    "written, reason",
    [
        ('"x\\u0000y"', "the value of hyperparameter 'bad' contains a NUL character"),
        ('"x\\ud800y"', "the value of hyperparameter 'bad' is not valid Unicode text (a lone surrogate at position 1)"),
    ],
    ids=["nul", "lone-surrogate"],
)
def test_values_no_process_can_receive_fail_naming_the_hyperparameter(code_job, run_checked, written, reason):
    # Both used to end as "Internal error" from deep inside subprocess.
    job = code_job(RAN)
    write_raw_hyperparameters(job, {"bad": written})

    finished = run_checked(job, within=30)

    assert finished.exit_code == 1
    assert finished.reason.startswith(reason)
    assert not (code_job.markers / "ran").exists()
