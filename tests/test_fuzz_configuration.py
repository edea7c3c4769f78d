"""Property-based tests (hypothesis) over configuration parsing and argument/variable building.

- ``environment.read`` on any three files either returns a configuration or raises
  ConfigurationError: no other exception, whatever the files hold;
- for an accepted configuration, ``sm_variables`` either raises ConfigurationError naming a key
  or builds exactly the arguments and ``SM_HP_*``/``SM_HPS``/``SM_USER_ARGS`` that the official
  toolkit's own functions (sagemaker-training's ``mapping``, from the peer venv) build, and execve
  carries them into a real process unchanged;
- through the real ``train``, a rejected configuration leaves a failure file naming a cause
  (never "Internal error") and an accepted one reaches the program intact.

The budget is fixed and the examples derandomized, so CI runs the same cases every time and
writes no example database.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import textwrap

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sagemaker_mxnet_container import environment, mxnet_settings, sm_variables
from sagemaker_mxnet_container.errors import ConfigurationError
from sagemaker_mxnet_container.resources import Resources

FIXED = dict(deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))

# Text including lone surrogates, NUL and other controls: what a JSON string escape can carry.
any_text = st.text(st.characters(exclude_categories=()), max_size=40)
json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | any_text
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4),
    max_leaves=12,
)
# Every reserved key the toolkit reads, and one it does not.
RESERVED = sorted(environment._READ | {"sagemaker_unknown_option"})
keys = any_text | st.sampled_from(RESERVED) | st.sampled_from(["lr", "LR", "learning-rate", "learning_rate"])
# As the platform writes values (JSON in a string), as people write them by hand, or not JSON.
written_values = json_values.map(json.dumps) | json_values | any_text
hyperparameter_files = st.dictionaries(keys, written_values, max_size=8)

host_names = st.sampled_from(["algo-1", "algo-2", ""]) | any_text
resource_configs = st.fixed_dictionaries(
    {},
    optional={
        "current_host": host_names | json_scalars,
        "hosts": st.lists(host_names, max_size=3) | json_values,
        "network_interface_name": st.just("eth0") | json_scalars,
    },
)
channel_names = st.sampled_from(["train", "test", "train-a", "train.a", ".", "..", "a/b"]) | any_text
channel_settings = st.fixed_dictionaries({}, optional={"TrainingInputMode": st.sampled_from(["File", "Pipe"])})
data_configs = st.dictionaries(channel_names, channel_settings | json_values, max_size=3)

# A whole file: a JSON document of the right or wrong shape, or text that is not JSON at all.
files = {
    "hyperparameters.json": hyperparameter_files.map(json.dumps) | json_values.map(json.dumps) | any_text,
    "resourceconfig.json": resource_configs.map(json.dumps) | json_values.map(json.dumps) | any_text,
    "inputdataconfig.json": data_configs.map(json.dumps) | json_values.map(json.dumps) | any_text,
}
_SAFE_CHANNEL = re.compile(r"^[A-Za-z0-9._-]+$")


def lay_out(base: str, contents: dict, make_channel_dirs: bool) -> environment.Paths:
    paths = environment.Paths(base)
    os.makedirs(paths.input_config_dir)
    os.makedirs(paths.input_data_dir)
    for name, text in contents.items():
        # surrogatepass: a lone surrogate becomes bytes that are not UTF-8, as a broken file would hold.
        with open(paths.config_file(name), "w", encoding="utf-8", errors="surrogatepass") as stream:
            stream.write(text)
    if make_channel_dirs:
        try:
            channels = json.loads(contents["inputdataconfig.json"])
        except ValueError:
            channels = None
        for name in channels if isinstance(channels, dict) else ():
            if _SAFE_CHANNEL.match(name) and name not in (".", ".."):
                os.makedirs(os.path.join(paths.input_data_dir, name), exist_ok=True)
    return paths


def read_or_reject(contents: dict, make_channel_dirs: bool = True):
    with tempfile.TemporaryDirectory() as base:
        try:
            return environment.read(lay_out(base, contents, make_channel_dirs))
        except ConfigurationError as error:
            assert str(error).strip(), "a rejection must say why"
            return None


def canonical(value) -> str:
    """Equality that holds for NaN too: the JSON text, keys sorted."""
    return json.dumps(value, sort_keys=True)


def build_variables(env: environment.TrainingEnvironment):
    settings_ = mxnet_settings.choose(len(env.hosts), 0, None)
    training = sm_variables.training_env(env, Resources(num_gpus=0, num_cpus=2), settings_, environ={})
    variables = sm_variables.variables(training, env, "/opt/ml/code")
    return training, variables, sm_variables.user_arguments(env.hyperparameters)


def official_variables(official_mapping, hyperparameters):
    """What sagemaker-training exports for these hyperparameters, by its own to_env_vars."""
    arguments = official_mapping.to_cmd_args(hyperparameters)
    exported = {"hps": hyperparameters, "user_args": arguments, **{f"hp_{k}": v for k, v in hyperparameters.items()}}
    return arguments, official_mapping.to_env_vars(exported)


def assert_as_official(official_mapping, hyperparameters, variables, arguments):
    for name, value in variables.items():
        assert isinstance(value, str)
        encoded = os.fsencode(f"{name}={value}")
        assert b"\0" not in encoded and len(encoded) < sm_variables.MAX_STRING_BYTES
    official_arguments, official = official_variables(official_mapping, dict(hyperparameters))
    assert arguments == official_arguments
    # Key by key: where two keys make one variable, the official toolkit keeps one value silently.
    for key, value in hyperparameters.items():
        (name, text), *_ = official_mapping.to_env_vars({f"hp_{key}": value}).items()
        assert variables[name] == text, name
    for name in ("SM_HPS", "SM_USER_ARGS"):
        assert variables[name] == official[name]
    assert canonical(json.loads(variables["SM_TRAINING_ENV"])["hyperparameters"]) == canonical(dict(hyperparameters))


def assert_names_a_key(error: ConfigurationError, hyperparameters) -> None:
    """A rejection names the hyperparameter at fault, or the variable that all of them overflow."""
    message = str(error)
    assert any(environment.shown(key) in message for key in hyperparameters) or "the variable SM_" in message, message


@settings(max_examples=400, **FIXED)
@given(st.fixed_dictionaries(files), st.booleans())
def test_reading_any_configuration_either_succeeds_or_raises_configuration_error(contents, make_channel_dirs):
    env = read_or_reject(contents, make_channel_dirs)
    if env is not None:
        assert env.current_host in env.hosts
        assert list(env.hosts) == sorted(env.hosts)
        assert not any(key.startswith("sagemaker_") for key in env.hyperparameters)


VALID_RESOURCES = json.dumps({"current_host": "algo-1", "hosts": ["algo-1"]})


@settings(max_examples=400, **FIXED)
@given(hyperparameter_files)
def test_hyperparameters_become_the_official_arguments_and_variables_or_fail_naming_a_key(
    official_mapping, hyperparameters
):
    env = read_or_reject(
        {
            "hyperparameters.json": json.dumps(hyperparameters),
            "resourceconfig.json": VALID_RESOURCES,
            "inputdataconfig.json": "{}",
        }
    )
    if env is None:
        return
    try:
        _, variables, arguments = build_variables(env)
    except ConfigurationError as error:
        assert_names_a_key(error, env.hyperparameters)
        return
    assert_as_official(official_mapping, env.hyperparameters, variables, arguments)


ECHO = textwrap.dedent(
    """
    import json, os, sys
    print(json.dumps({"argv": sys.argv[1:], "hps": os.environ["SM_HPS"],
                      "hp": {k: v for k, v in os.environ.items() if k.startswith("SM_HP_")}}))
    """
)


@settings(max_examples=40, **FIXED)
@given(st.dictionaries(any_text, json_values, max_size=6))
def test_accepted_hyperparameters_reach_a_real_process_as_the_official_toolkit_gives_them(official_mapping, values):
    env = read_or_reject(
        {
            "hyperparameters.json": json.dumps({key: json.dumps(value) for key, value in values.items()}),
            "resourceconfig.json": VALID_RESOURCES,
            "inputdataconfig.json": "{}",
        }
    )
    if env is None:
        return
    try:
        _, variables, arguments = build_variables(env)
    except ConfigurationError as error:
        assert_names_a_key(error, env.hyperparameters)
        return
    official_arguments, official = official_variables(official_mapping, dict(env.hyperparameters))
    run = subprocess.run(
        [sys.executable, "-c", ECHO, *arguments],
        env={**os.environ, **variables},
        capture_output=True,
        timeout=30,
    )
    assert run.returncode == 0, run.stderr
    seen = json.loads(run.stdout)
    assert seen["argv"] == official_arguments
    assert seen["hps"] == official["SM_HPS"]
    for key in env.hyperparameters:
        name = f"SM_HP_{key.upper()}"
        assert seen["hp"][name] == official[name]


RUNS = "import os\nopen(os.path.join(os.environ['SM_MODEL_DIR'], 'ran'), 'w').close()\n"


@settings(max_examples=25, **FIXED)
@given(st.dictionaries(keys, written_values, max_size=5))
def test_through_train_every_rejection_leaves_a_failure_naming_its_cause(values):
    with tempfile.TemporaryDirectory() as base:
        paths = lay_out(
            base,
            {
                "hyperparameters.json": json.dumps({"sagemaker_program": '"train.py"', **values}),
                "resourceconfig.json": VALID_RESOURCES,
                "inputdataconfig.json": "{}",
            },
            False,
        )
        os.makedirs(paths.code_dir)
        with open(os.path.join(paths.code_dir, "train.py"), "w") as stream:
            stream.write(RUNS)
        run = subprocess.run(
            [sys.executable, "-m", "sagemaker_mxnet_container"],
            env={**os.environ, "SAGEMAKER_BASE_DIR": base, "TMPDIR": base},
            capture_output=True,
            text=True,
            errors="replace",
            timeout=120,
        )
        failure_path = os.path.join(paths.output_dir, "failure")
        success_path = os.path.join(paths.output_dir, "success")
        ran = os.path.exists(os.path.join(paths.model_dir, "ran"))
        if run.returncode == 0:
            assert os.path.exists(success_path) and not os.path.exists(failure_path)
            assert ran
        else:
            assert not os.path.exists(success_path)
            with open(failure_path, encoding="utf-8") as stream:
                reason = stream.read()
            assert reason.strip() and not reason.startswith("Internal error"), reason
            assert "Traceback" not in run.stderr, run.stderr
