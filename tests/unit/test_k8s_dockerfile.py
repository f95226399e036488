"""lameduck.k8s.dockerfile (and its dockerfile_syntax and dockerfile_image): the file read the way BuildKit reads it,
the image config its stages produce, and the findings on PID 1, STOPSIGNAL and lameduck's settings.

The corpus under tests/k8s_corpus/dockerfiles/ holds realistic Dockerfiles; every rule has a file where it fires and
one where it stays quiet. Exact rule ids, severities and lines are asserted, not substrings of a report.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lameduck.errors import ManifestError
from lameduck.k8s.dockerfile import check_dockerfile, is_dockerfile_name, parse_signal
from lameduck.k8s.dockerfile_image import resolve_image
from lameduck.k8s.dockerfile_syntax import Instruction, parse_dockerfile
from lameduck.k8s.findings import RULES, Finding, Severity

CORPUS = Path(__file__).resolve().parents[1] / "k8s_corpus" / "dockerfiles"
E, W, N = Severity.ERROR, Severity.WARNING, Severity.NOTE
SHELL_FORM, STOPSIGNAL, SCRIPT, SETTINGS = (
    "dockerfile-shell-form",
    "dockerfile-stopsignal",
    "dockerfile-entrypoint-script",
    "lameduck-settings",
)


def check(text: str, **kwargs: str) -> list[Finding]:
    return check_dockerfile(text, "Dockerfile", **kwargs)


def summary(found: list[Finding]) -> list[tuple[str, Severity, int, str]]:
    return [(f.rule, f.severity, f.location.line, f.location.path) for f in found]


def corpus(name: str) -> list[Finding]:
    path = CORPUS / name
    return check_dockerfile(path.read_text(encoding="utf-8"), str(path))


# -- the corpus ---------------------------------------------------------------------------------------------------

EXPECTED: dict[str, list[tuple[str, Severity, int, str]]] = {
    "bash-pipefail-shell.Dockerfile": [(SHELL_FORM, E, 6, "CMD")],
    "celery-worker-sigint.Dockerfile": [],
    "cloud-run-exec-port.Dockerfile": [(SETTINGS, E, 6, "CMD")],
    "distroless-multistage.Dockerfile": [],
    "docker-entrypoint-script.Dockerfile": [(SCRIPT, N, 7, "ENTRYPOINT")],
    # /start.sh is not in the file: it may start lameduck (pip installs it) or not, so SIGKILL is a warning.
    "dumb-init-script-stopsignal.Dockerfile": [(STOPSIGNAL, W, 5, "STOPSIGNAL"), (SCRIPT, N, 7, "CMD")],
    "exec-lameduck-shell.Dockerfile": [],
    "external-base-no-cmd.Dockerfile": [],
    "fastapi-uvicorn-shell.Dockerfile": [(SHELL_FORM, E, 13, "CMD")],
    "gunicorn-shell.Dockerfile": [(SHELL_FORM, E, 8, "CMD")],
    "gunicorn-sigint.Dockerfile": [],  # gunicorn stops on SIGINT as gunicorn does: not lameduck's business
    "heredoc-entrypoint-no-exec.Dockerfile": [(SHELL_FORM, E, 5, "COPY")],
    "heredoc-scripts.Dockerfile": [],
    "inherited-stage-cmd.Dockerfile": [(SHELL_FORM, E, 6, "CMD")],
    "inherited-stage-reset.Dockerfile": [],
    "invalid-grace-env.Dockerfile": [(SETTINGS, E, 5, "ENV LAMEDUCK_GRACE")],
    "nginx-official-sigquit.Dockerfile": [],  # nginx's own graceful stop: not lameduck's business
    "nginx-style-stopsignal.Dockerfile": [(STOPSIGNAL, E, 6, "STOPSIGNAL")],
    "sh-c-migrate-exec.Dockerfile": [],
    "sh-c-migrate.Dockerfile": [(SHELL_FORM, E, 6, "CMD")],
    "sh-start-script.Dockerfile": [(SCRIPT, N, 5, "CMD")],
    "start-script-sigkill.Dockerfile": [(STOPSIGNAL, W, 7, "STOPSIGNAL"), (SCRIPT, N, 8, "CMD")],
    "tini-entrypoint.Dockerfile": [],
    "windows-escape-backtick.Dockerfile": [(SHELL_FORM, E, 13, "CMD")],
    "worker-sh-c-sigquit.Dockerfile": [(STOPSIGNAL, E, 9, "STOPSIGNAL")],  # python -m lameduck work under sh and tini
}

#: For each rule: a corpus file where it fires, and one on the same theme where it must not.
RULE_CASES = {
    SHELL_FORM: ("fastapi-uvicorn-shell.Dockerfile", "exec-lameduck-shell.Dockerfile"),
    STOPSIGNAL: ("nginx-style-stopsignal.Dockerfile", "nginx-official-sigquit.Dockerfile"),
    SCRIPT: ("docker-entrypoint-script.Dockerfile", "heredoc-scripts.Dockerfile"),
    SETTINGS: ("invalid-grace-env.Dockerfile", "distroless-multistage.Dockerfile"),
}


def test_every_corpus_file_has_its_expectations() -> None:
    assert sorted(p.name for p in CORPUS.iterdir()) == sorted(EXPECTED)


@pytest.mark.parametrize(("name", "expected"), sorted(EXPECTED.items()))
def test_corpus_findings(name: str, expected: list[tuple[str, Severity, int, str]]) -> None:
    found = corpus(name)
    assert summary(found) == expected
    for f in found:
        assert f.location.file == str(CORPUS / name)
        assert f.location.document == 0
        assert f.location.column == 1
        assert f.message
        assert f.fix


@pytest.mark.parametrize(("rule", "files"), sorted(RULE_CASES.items()))
def test_each_rule_fires_and_stays_quiet(rule: str, files: tuple[str, str]) -> None:
    fires, quiet = files
    assert rule in {f.rule for f in corpus(fires)}
    assert rule not in {f.rule for f in corpus(quiet)}


def test_the_dockerfile_rules_are_catalogued_with_their_severities() -> None:
    assert RULES[SHELL_FORM].severity is E
    assert RULES[STOPSIGNAL].severity is E
    assert RULES[SCRIPT].severity is N
    assert RULES[SETTINGS].severity is E


def test_shell_form_fix_is_the_exec_form_line_built_from_the_command() -> None:
    (finding,) = corpus("fastapi-uvicorn-shell.Dockerfile")
    assert finding.message == (
        "CMD in shell form: PID 1 is /bin/sh -c 'uvicorn app.main:app --host 0.0.0.0 --p…', which does not forward "
        "SIGTERM; the service is killed at the end of the grace period without draining"
    )
    assert (
        finding.fix == 'write it in exec form: CMD ["uvicorn", "app.main:app", "--host", "0.0.0.0", "--port", "8000"]'
    )
    assert finding.extra["command"] == ["/bin/sh", "-c", "uvicorn app.main:app --host 0.0.0.0 --port 8000"]


def test_continuation_lines_are_joined_into_one_exec_form_line() -> None:
    (finding,) = corpus("gunicorn-shell.Dockerfile")
    assert finding.fix == (
        'write it in exec form: CMD ["gunicorn", "app.main:app", "--workers", "4", "--worker-class", '
        '"uvicorn.workers.UvicornWorker", "--bind", "0.0.0.0:8000"]'
    )


def test_backtick_escape_continues_lines_and_leaves_backslashes_alone() -> None:
    text = (CORPUS / "windows-escape-backtick.Dockerfile").read_text(encoding="utf-8")
    instructions = parse_dockerfile(text, "Dockerfile")
    assert [(i.keyword, i.line, i.end_line) for i in instructions] == [
        ("FROM", 4, 4),
        ("ENV", 5, 5),
        ("WORKDIR", 6, 6),
        ("COPY", 7, 7),
        ("RUN", 8, 10),
        ("ENV", 11, 12),
        ("CMD", 13, 14),
    ]
    image = resolve_image(instructions, "Dockerfile")
    assert image.env["BUILD_ROOT"] == "C:\\build\\"
    assert image.env["LAMEDUCK_GRACE"] == "45"
    (finding,) = check(text)
    assert finding.fix == 'write it in exec form: CMD ["lameduck", "serve", "app:app", "--host", "0.0.0.0"]'


def test_sh_c_script_without_exec_gets_exec_in_front_of_its_last_command() -> None:
    (finding,) = corpus("sh-c-migrate.Dockerfile")
    assert finding.message.startswith("PID 1 is sh running a script whose last command is not exec'd")
    assert finding.fix == (
        "put exec in front of the last command (lameduck serve app:app --host … → exec lameduck serve app:app --host …)"
    )


def test_a_settings_error_points_at_the_env_line_that_sets_it() -> None:
    (finding,) = corpus("invalid-grace-env.Dockerfile")
    assert finding.message == (
        "lameduck would refuse to start (exit 2): --grace (LAMEDUCK_GRACE): must be 0.001 ≤ s ≤ 3600 (got '30s')"
    )
    assert finding.location.line == 5  # the ENV instruction starts on line 5; the value is on its second line


def test_exec_form_does_not_expand_variables() -> None:
    (finding,) = corpus("cloud-run-exec-port.Dockerfile")
    assert finding.message == "lameduck would refuse to start (exit 2): --port: must be 0..65535 (got '$PORT')"
    assert finding.fix.startswith("exec form passes $VARIABLES through unexpanded")


def test_heredoc_script_that_does_not_exec_is_judged_where_it_is_written() -> None:
    (finding,) = corpus("heredoc-entrypoint-no-exec.Dockerfile")
    assert finding.message.startswith(
        "PID 1 is the script ./entrypoint.sh (ENTRYPOINT at line 12), written here, whose last command is not exec'd"
    )
    assert finding.fix == (
        "put exec in front of its last command (lameduck serve app:app --host … → exec lameduck serve app:app --host …)"
    )


def test_wrapper_script_note_names_the_script_and_how_it_is_reached() -> None:
    (finding,) = corpus("docker-entrypoint-script.Dockerfile")
    assert finding.message.startswith("PID 1 is the script /docker-entrypoint.sh, which lameduck cannot see into")
    assert finding.fix == 'make sure /docker-entrypoint.sh ends with exec "$@" (or execs the service), or run the ' + (
        "service directly"
    )
    under_init = next(f for f in corpus("dumb-init-script-stopsignal.Dockerfile") if f.rule == SCRIPT)
    assert under_init.message.startswith("dumb-init runs the script /start.sh")
    (sh_file,) = corpus("sh-start-script.Dockerfile")
    assert sh_file.message.startswith("PID 1 is sh running the script /app/scripts/start.sh")


def test_stopsignal_message_says_what_the_signal_does() -> None:
    (finding,) = corpus("nginx-style-stopsignal.Dockerfile")
    assert finding.message == (
        "STOPSIGNAL SIGQUIT: docker stop and the kubelet send it instead of SIGTERM, and lameduck drains only on "
        "SIGTERM or SIGINT; SIGQUIT's default action ends the process at once, cutting every request in flight"
    )
    assert finding.fix == "remove STOPSIGNAL (the default is SIGTERM) or write STOPSIGNAL SIGTERM"


def test_stopsignal_for_a_command_the_file_does_not_show_is_a_warning_in_case_it_runs_lameduck() -> None:
    (finding, _) = corpus("start-script-sigkill.Dockerfile")
    assert finding.message == (
        "STOPSIGNAL SIGKILL: docker stop and the kubelet send it instead of SIGTERM, and this file does not show what "
        "the image runs (the script start.sh is not in this file); in case it runs lameduck: lameduck drains only on "
        "SIGTERM or SIGINT, and SIGKILL cannot be caught: the service dies at once, mid-request, and nothing drains"
    )
    assert finding.fix == (
        "remove STOPSIGNAL (the default is SIGTERM) or write STOPSIGNAL SIGTERM: no program can stop gracefully on "
        "SIGKILL"
    )
    (quit_,) = check("FROM python:3.12-slim\nSTOPSIGNAL SIGQUIT\n")  # the base image's CMD runs
    assert "does not show what the image runs (the base image decides the command)" in quit_.message
    assert quit_.fix == (
        "if the image runs lameduck, remove STOPSIGNAL (the default is SIGTERM) or write STOPSIGNAL SIGTERM; if it "
        "runs a program whose graceful stop is SIGQUIT, keep it and ignore this warning"
    )


# -- the parser ---------------------------------------------------------------------------------------------------


def keywords(text: str) -> list[tuple[str, str, int]]:
    return [(i.keyword, i.args, i.line) for i in parse_dockerfile(text, "Dockerfile")]


def test_instructions_are_case_insensitive_and_keep_their_position() -> None:
    (from_, cmd) = parse_dockerfile('from python:3.12\n   cmd ["a", "b"]\n', "Dockerfile")
    assert from_ == Instruction("FROM", "python:3.12", 1, 1, 1)
    assert (cmd.keyword, cmd.line, cmd.column, cmd.exec_form) == ("CMD", 2, 4, ("a", "b"))


def test_comments_and_blank_lines_inside_a_continuation_are_dropped() -> None:
    text = "FROM python\nRUN apt-get update \\\n# a comment\n\n    && apt-get install -y tini\nCMD x\n"
    assert keywords(text) == [
        ("FROM", "python", 1),
        ("RUN", "apt-get update     && apt-get install -y tini", 2),
        ("CMD", "x", 6),
    ]


def test_an_escaped_escape_character_does_not_continue_the_line() -> None:
    assert keywords("FROM python\nENV A=b\\\\\nCMD x\n") == [
        ("FROM", "python", 1),
        ("ENV", "A=b\\\\", 2),
        ("CMD", "x", 3),
    ]


def test_comments_are_whole_lines_only() -> None:
    assert keywords("FROM python\nCMD run # not a comment\n")[1] == ("CMD", "run # not a comment", 2)


def test_crlf_line_endings_and_a_byte_order_mark() -> None:
    found = check('\ufeffFROM python:3.12\r\n\r\nSTOPSIGNAL SIGKILL\r\nCMD ["lameduck", "serve", "a:b"]\r\n')
    assert summary(found) == [(STOPSIGNAL, E, 3, "STOPSIGNAL")]


@pytest.mark.parametrize(
    ("text", "escape"),
    [
        ("# escape=`\nFROM python\n", "`"),
        ("# syntax=docker/dockerfile:1\n#escape = ` \nFROM python\n", "`"),
        ("# check=skip=JSONArgsRecommended\n# escape=`\nFROM python\n", "`"),
        ("# a comment first\n# escape=`\nFROM python\n", "\\"),  # directives must come first
        ("\n# escape=`\nFROM python\n", "\\"),  # a blank line ends them
        ("# unknown=directive\n# escape=`\nFROM python\n", "\\"),
    ],
)
def test_parser_directives(text: str, escape: str) -> None:
    assert {i.escape for i in parse_dockerfile(text, "Dockerfile")} == {escape}


def test_heredoc_bodies_are_not_instructions() -> None:
    text = 'FROM python\nRUN <<EOF\nCMD uvicorn app:app\nEOF\nRUN <<-END cat\n\tSTOPSIGNAL 9\n\tEND\nCMD ["x"]\n'
    instructions = parse_dockerfile(text, "Dockerfile")
    assert [(i.keyword, i.line, i.end_line) for i in instructions] == [
        ("FROM", 1, 1),
        ("RUN", 2, 4),
        ("RUN", 5, 7),
        ("CMD", 8, 8),
    ]
    assert instructions[1].heredocs == (("EOF", "CMD uvicorn app:app\n"),)
    assert check(text) == []


def test_exec_form_run_has_no_heredoc() -> None:
    assert keywords('FROM python\nRUN ["sh", "-c", "cat <<EOF"]\nCMD ["x"]\n')[2] == ("CMD", '["x"]', 3)


@pytest.mark.parametrize(
    ("text", "message", "line"),
    [
        ("", "file with no instructions", 0),
        ("# only a comment\n", "file with no instructions", 1),
        ("FROM python\nCOPPY . /app\n", "unknown instruction: COPPY", 2),
        ('CMD ["x"]\n', "CMD before the first FROM: only ARG may come before it", 1),
        ("ARG BASE\n", "no FROM instruction: the file builds no image", 1),
        ("# escape=`\n# escape=\\\nFROM python\n", "only one escape parser directive can be used", 2),
        ("# escape=|\nFROM python\n", "invalid escape token '|' does not match ` or \\", 1),
        ('FROM python\nCMD ["uvicorn", 8000]\n', "CMD: when using JSON array syntax, arrays must be", 2),
        ("FROM python\nSHELL /bin/bash -c\n", "SHELL requires the arguments to be in JSON form", 2),
        ("FROM python\nSHELL []\n", "SHELL requires at least one argument", 2),
        ("FROM python\nSTOPSIGNAL\n", "STOPSIGNAL requires exactly one argument", 2),
        ("FROM python\nRUN <<EOF\necho\n", "unterminated heredoc", 2),
        ("FROM python AS\n", "FROM requires either one or three arguments", 1),
        ("FROM python AS 1st\n", "invalid name for build stage: '1st'", 1),
        ("FROM --platfrom=linux/amd64 python\n", "FROM: unknown flag: --platfrom", 1),
        ("FROM python\nCMD --verbose\n", "CMD: unknown flag: --verbose", 2),
        ("FROM python\nENV LAMEDUCK_GRACE\n", "ENV must have two arguments", 2),
        ("FROM python\nENV A=1 B\n", "Syntax error - can't find = in 'B'", 2),
        ("FROM python\nONBUILD FROM x\n", "FROM isn't allowed as an ONBUILD trigger", 2),
        ("FROM ${MISSING}\n", "base name (${MISSING}) should not be blank", 1),
    ],
)
def test_what_docker_build_refuses_is_a_manifest_error(text: str, message: str, line: int) -> None:
    with pytest.raises(ManifestError) as caught:
        check(text)
    assert message in str(caught.value)
    assert caught.value.source == "Dockerfile"
    assert caught.value.line == line


@pytest.mark.parametrize(
    "text",
    [
        "FROM python\nCMD ['uvicorn', 'app:app']\n",
        'FROM python\nCMD ["uvicorn" "app:app"]\n',
        'FROM python\nCMD ["uvicorn", "app:app"]  # comments belong on their own line\n',
    ],
)
def test_a_json_typo_is_shell_form_and_the_fix_is_the_array_meant(text: str) -> None:
    (finding,) = check(text)
    assert (finding.rule, finding.location.line) == (SHELL_FORM, 2)
    assert finding.fix.endswith('so Docker runs it through a shell: write CMD ["uvicorn", "app:app"]')


@pytest.mark.parametrize(
    ("args", "why"),
    [
        ('["lameduck","serve","a:b"', "no closing ]"),
        ('["lameduck", "serve", "a:b",', "a comma after the last word, no closing ]"),
        ("['lameduck', 'serve', 'a:b'", "single quotes, no closing ]"),
        ('["lameduck" "serve", "a:b"]', "a missing comma"),
        ('["lameduck", "serve", "a:b"]  # why', "a comment after it"),
        ('["lameduck", "serve", "a:b",]', "a comma after the last word"),
    ],
)
def test_a_json_typo_fix_says_what_is_wrong_and_writes_the_exec_form(args: str, why: str) -> None:
    (finding,) = check(f"FROM python\nCMD {args}\n")
    assert finding.rule == SHELL_FORM
    assert finding.fix == (
        f"it is not a JSON array as written ({why}), so Docker runs it through a shell: write "
        'CMD ["lameduck", "serve", "a:b"]'
    )


@pytest.mark.parametrize(
    "args",
    [
        "[ -f /app/.env ] && . /app/.env; uvicorn app:app",  # a shell test, not an array
        '["uvicorn", "app:app"] && echo started',  # something after the array
        '["uvicorn", $APP]',  # a word that is not a string
    ],
)
def test_a_shell_script_that_starts_with_a_bracket_is_not_a_json_typo(args: str) -> None:
    (finding,) = check(f"FROM python\nCMD {args}\n")
    assert finding.rule == SHELL_FORM
    assert "not a JSON array" not in finding.fix


# -- stages and the image config ----------------------------------------------------------------------------------


def test_only_the_last_stage_is_judged() -> None:
    text = 'FROM python AS build\nCMD lameduck serve app:app\nSTOPSIGNAL SIGKILL\n\nFROM python:3.12-slim\nCMD ["x"]\n'
    assert check(text) == []
    assert summary(check(text, target="build")) == [(SHELL_FORM, E, 2, "CMD"), (STOPSIGNAL, E, 3, "STOPSIGNAL")]
    with pytest.raises(ManifestError, match="target stage 'prod' could not be found"):
        check(text, target="prod")


def test_an_external_base_leaves_entrypoint_cmd_and_stopsignal_unknown() -> None:
    image = resolve_image(parse_dockerfile("FROM nginx:1.27\nCOPY site /usr/share/nginx/html\n", "D"), "D")
    assert image.base == "nginx:1.27"
    assert image.unknown == frozenset({"ENTRYPOINT", "CMD", "STOPSIGNAL"})
    assert image.argv is None
    assert image.workdir is None
    scratch = resolve_image(parse_dockerfile('FROM scratch\nCOPY app /app\nCMD ["/app"]\n', "D"), "D")
    assert (scratch.unknown, scratch.argv, scratch.workdir) == (frozenset(), ("/app",), "/")


def test_a_stage_inherits_from_an_earlier_stage_and_its_onbuild_triggers() -> None:
    text = (
        "ARG BASE=builder\n"
        "FROM python:3.12-slim AS Builder\n"
        "ENV LAMEDUCK_HOST=0.0.0.0\n"
        "ONBUILD CMD uvicorn app:app\n"
        "FROM ${BASE}\n"
        "RUN true\n"
    )
    image = resolve_image(parse_dockerfile(text, "D"), "D")
    assert image.base == "python:3.12-slim"
    assert image.env["LAMEDUCK_HOST"] == "0.0.0.0"
    assert image.unknown == frozenset({"ENTRYPOINT", "STOPSIGNAL"})
    assert summary(check(text)) == [(SHELL_FORM, E, 4, "ONBUILD CMD")]


def test_a_later_stage_is_not_a_base_and_names_are_case_insensitive() -> None:
    text = "FROM app AS first\nFROM python AS app\nCMD uvicorn x:y\n"
    first = resolve_image(parse_dockerfile(text, "D"), "D", target="First")
    assert (first.stage, first.base, first.cmd) == ("first", "app", None)  # the image named app, not the stage
    assert resolve_image(parse_dockerfile("FROM python AS app\nFROM APP\n", "D"), "D").base == "python"


@pytest.mark.parametrize(
    ("text", "argv"),
    [
        ('FROM scratch\nCMD ["a"]\nENTRYPOINT ["e"]\n', ("e", "a")),  # a CMD of the same stage survives ENTRYPOINT
        ('FROM scratch\nENTRYPOINT ["e"]\nCMD ["a"]\n', ("e", "a")),
        ('FROM scratch AS base\nCMD ["a"]\nFROM base\nENTRYPOINT ["e"]\n', ("e",)),  # an inherited one does not
        ('FROM scratch\nENTRYPOINT ["e"]\nCMD a b\n', ("e", "/bin/sh", "-c", "a b")),
        ("FROM scratch\nENTRYPOINT e\nCMD a\n", ("/bin/sh", "-c", "e", "/bin/sh", "-c", "a")),
        ('FROM scratch\nCMD ["a"]\nCMD ["b"]\n', ("b",)),
        ('FROM scratch\nENTRYPOINT ["e"]\nENTRYPOINT []\nCMD ["a"]\n', ("a",)),
        ('FROM scratch\nSHELL ["/bin/bash", "-c"]\nCMD a\n', ("/bin/bash", "-c", "a")),
        ('FROM scratch\nCMD a\nSHELL ["/bin/bash", "-c"]\n', ("/bin/sh", "-c", "a")),
    ],
)
def test_entrypoint_and_cmd_combine_as_docker_combines_them(text: str, argv: tuple[str, ...]) -> None:
    assert resolve_image(parse_dockerfile(text, "D"), "D").argv == argv


def test_env_values_are_expanded_from_args_and_earlier_env() -> None:
    text = (
        "ARG GRACE=45\n"
        "FROM python\n"
        "ARG GRACE\n"
        "ARG SECRET\n"
        "ENV A=1 B='two words' C=\"${GRACE}\" D=${SECRET} E=${SECRET:-x}\n"
        "ENV F=$A G=${NOPE:-fallback} A=3 H=$A\n"
        "ENV LEGACY value with spaces\n"
    )
    env = resolve_image(parse_dockerfile(text, "D"), "D").env
    assert env == {
        "A": "3",
        "B": "two words",
        "C": "45",
        "D": None,  # a build argument without default
        "E": None,  # unknown: it may be set to something non-empty
        "F": "1",
        "G": None,  # the base image may set NOPE
        "H": "1",  # values see the env from before the instruction
        "LEGACY": "value with spaces",
    }


# -- PID 1 --------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("FROM python\nCMD exec uvicorn app:app\n", []),
        ("FROM python\nCMD cd /app && exec uvicorn app:app\n", []),
        ("FROM python\nENTRYPOINT exec uvicorn app:app\n", []),
        ("FROM python\nENTRYPOINT uvicorn app:app\n", [(SHELL_FORM, E, 2, "ENTRYPOINT")]),
        ('FROM python\nENTRYPOINT ["tini", "--"]\nCMD uvicorn app:app\n', [(SHELL_FORM, E, 3, "CMD")]),
        ('FROM python\nENTRYPOINT ["tini", "--", "sh", "-c", "uvicorn x:y"]\n', [(SHELL_FORM, E, 2, "ENTRYPOINT")]),
        ('FROM python\nENTRYPOINT ["/bin/sh", "-c"]\nCMD ["exec uvicorn app:app"]\n', []),
        ('FROM python\nCMD ["bash", "-c", "trap \'kill -TERM $pid\' TERM; uvicorn x:y & pid=$!; wait"]\n', []),
        ('FROM python\nENTRYPOINT ["python", "-m", "app"]\nCMD serve --workers 2\n', []),  # CMD: arguments here
        ('FROM python\nSHELL ["powershell", "-Command"]\nCMD uvicorn app:app\n', []),  # not a POSIX shell
        ("FROM python\nCMD\n", []),  # nothing to run
        ('FROM python\nENTRYPOINT ["/usr/local/bin/lameduck", "serve", "app:app", "--host", "0.0.0.0"]\n', []),
        ('FROM python\nCMD ["./start.sh"]\n', [(SCRIPT, N, 2, "CMD")]),
        ('FROM python\nCMD ["sh", "-c", "exec ./run-entrypoint"]\n', [(SCRIPT, N, 2, "CMD")]),
        ('FROM python\nCMD ["/app/entrypoint.py"]\n', []),
        ('FROM python\nENTRYPOINT ["tini", "-g", "--", "dumb-init", "lameduck", "serve", "a:b", "--host", "::"]\n', []),
        # lameduck serve|work as PID 1 is its own init (lameduck.runtime.pid1): no tini needed, no finding
        ('FROM python\nCMD ["lameduck", "serve", "a:b", "--host", "0.0.0.0"]\n', []),
        ('FROM python\nENTRYPOINT ["python", "-m", "lameduck", "work", "jobs:w"]\n', []),
        ("FROM python\nCMD exec lameduck work jobs:w\n", []),
    ],
)
def test_pid1(text: str, expected: list[tuple[str, Severity, int, str]]) -> None:
    assert summary(check(text)) == expected


def test_a_shell_form_entrypoint_ignores_cmd_and_says_so() -> None:
    (finding,) = check('FROM python\nENTRYPOINT uvicorn app:app\nCMD ["--workers", "2"]\n')
    assert finding.message.endswith("(a shell-form ENTRYPOINT also ignores CMD)")
    assert finding.fix == 'write it in exec form: ENTRYPOINT ["uvicorn", "app:app"]'


def test_a_shell_form_cmd_under_an_exec_entrypoint_is_handed_to_it() -> None:
    (finding,) = check('FROM python\nENTRYPOINT ["tini", "--"]\nCMD uvicorn app:app --port $PORT\n')
    assert finding.message.startswith(
        "CMD in shell form is handed to ENTRYPOINT as /bin/sh -c 'uvicorn app:app --port $PORT': the service runs "
        "under sh"
    )
    assert finding.fix == (
        "start it with exec (the shell then hands PID 1 to the service): CMD exec uvicorn app:app --port $PORT"
    )


def test_exec_form_sh_c_with_one_plain_command_is_run_without_the_shell() -> None:
    (finding,) = check('FROM python\nCMD ["/bin/sh", "-c", "uvicorn app:app --host 0.0.0.0"]\n')
    assert finding.fix == 'run it without the shell: CMD ["uvicorn", "app:app", "--host", "0.0.0.0"]'


def test_a_heredoc_script_found_through_path_and_a_python_one_is_left_alone() -> None:
    text = (
        "FROM python\n"
        "COPY <<EOF /usr/local/bin/run-app\n#!/bin/sh\nuvicorn app:app\nEOF\n"
        "COPY <<EOF /usr/local/bin/py-entrypoint\n#!/usr/bin/env python3\nprint('hi')\nEOF\n"
        'ENTRYPOINT ["run-app"]\n'
    )
    assert summary(check(text)) == [(SHELL_FORM, E, 2, "COPY")]
    assert check(text.replace('["run-app"]', '["py-entrypoint"]')) == []


# -- STOPSIGNAL ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "name"),
    [
        ("SIGTERM", "TERM"),
        ("term", "TERM"),
        ("15", "TERM"),
        ("+15", "TERM"),
        ("SIGINT", "INT"),
        ("2", "INT"),
        ("sigkill", "KILL"),
        ("SIGIOT", "ABRT"),
        ("SIGRTMIN+3", "RTMIN+3"),
        ("64", "RTMAX"),
        ("0", None),
        ("65", None),
        ("-15", None),
        ("SIGFOO", None),
        ("SIGSIGTERM", None),
        ("9" * 40, None),
    ],
)
def test_parse_signal_reads_what_docker_reads(value: str, name: str | None) -> None:
    assert parse_signal(value) == name


@pytest.mark.parametrize(
    ("value", "effect"),
    [
        ("SIGTERM", None),
        ("sigint", None),
        ("2", None),
        ("SIGKILL", "SIGKILL cannot be caught"),
        ("SIGSTOP", "SIGSTOP suspends the process"),
        ("SIGWINCH", "Python ignores SIGWINCH"),
        ("SIGHUP", "SIGHUP's default action ends the process at once"),
        ("SIGUSR1", "SIGUSR1's default action ends the process at once"),
        ("3", "STOPSIGNAL 3 (SIGQUIT)"),
        ("SIGTERN", "STOPSIGNAL 'SIGTERN' is not a Linux signal"),
    ],
)
def test_stopsignal(value: str, effect: str | None) -> None:
    # The image runs lameduck: every signal but TERM and INT is an error. (CMD ["x"] would be another program.)
    found = check(f'FROM python\nSTOPSIGNAL {value}\nCMD ["lameduck", "serve", "app:app"]\n')
    if effect is None:
        assert found == []
        return
    (finding,) = found
    assert (finding.rule, finding.severity, finding.location.line, finding.location.path) == (
        STOPSIGNAL,
        E,
        2,
        "STOPSIGNAL",
    )
    assert effect in finding.message


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        # lameduck, however it is reached: SIGQUIT cuts its drain
        ('CMD ["lameduck", "serve", "a:b"]', E),
        ("CMD exec lameduck serve a:b", E),
        ('ENTRYPOINT ["tini", "--"]\nCMD ["python", "-m", "lameduck", "work", "jobs:w"]', E),
        ('CMD ["sh", "-c", "migrate && exec /venv/bin/lameduck serve a:b"]', E),
        ("CMD lameduck serve a:b; echo stopped", E),  # not its last command, but the shell runs it
        ('CMD ["lameduck", "serve", "a:b"', E),  # a JSON typo: judged as the array it was meant to be
        ('ENV LAMEDUCK_GRACE=60\nCMD ["python", "app.py"]', E),  # configured for lameduck: lameduck.run()
        ('COPY <<EOF /start.sh\n#!/bin/sh\nmigrate\nexec lameduck serve a:b\nEOF\nCMD ["/start.sh"]', E),
        ('COPY <<EOF /app/main.py\n#!/usr/bin/env python3\nimport lameduck\nEOF\nCMD ["/app/main.py"]', E),
        # visibly another program: its stop signal is its own business
        ('CMD ["nginx", "-g", "daemon off;"]', None),
        ('CMD ["gunicorn", "a:b"]', None),
        ('ENV LAMEDUCK_GRACE=60\nCMD ["gunicorn", "a:b"]', None),  # the env does not make gunicorn lameduck
        ("CMD exec uvicorn a:b", None),
        ('CMD ["uv", "run", "--frozen", "celery", "-A", "proj", "worker"]', None),
        ('ENTRYPOINT ["dumb-init", "--"]\nCMD ["env", "TZ=UTC", "haproxy", "-f", "/etc/haproxy.cfg"]', None),
        ('COPY <<EOF /entrypoint.sh\n#!/bin/sh\nexec "$@"\nEOF\nENTRYPOINT ["/entrypoint.sh"]\nCMD ["nginx"]', None),
        # not shown: it may be lameduck
        ('CMD ["./start.sh"]', W),
        ('CMD ["sh", "/app/run.sh"]', W),
        ('CMD ["python", "app.py"]', W),  # may call lameduck.run()
        ("CMD exec $APP_COMMAND", W),
        ('ENTRYPOINT ["/docker-entrypoint.sh"]\nCMD ["nginx", "-g", "daemon off;"]', W),  # the script decides
        ('COPY <<EOF /entrypoint.sh\n#!/bin/sh\nexec "$@"\nEOF\nENTRYPOINT ["/entrypoint.sh"]', W),
        ('ENTRYPOINT ["tini", "--"]', W),
        ("", W),  # the base image decides
    ],
)
def test_stopsignal_is_judged_against_what_the_image_runs(command: str, expected: Severity | None) -> None:
    found = [f for f in check(f"FROM python:3.12-slim\nSTOPSIGNAL SIGQUIT\n{command}\n") if f.rule == STOPSIGNAL]
    assert [(f.severity, f.location.line) for f in found] == ([] if expected is None else [(expected, 2)])


def test_a_stopsignal_that_is_not_a_signal_is_an_error_whatever_runs() -> None:
    assert summary(check('FROM nginx\nSTOPSIGNAL SIGQUITE\nCMD ["nginx", "-g", "daemon off;"]\n')) == [
        (STOPSIGNAL, E, 2, "STOPSIGNAL")
    ]


def test_stopsignal_from_build_arguments() -> None:
    serve = 'CMD ["lameduck", "serve", "app:app"]\n'
    assert summary(check(f"FROM python\nARG SIG=SIGQUIT\nSTOPSIGNAL $SIG\n{serve}")) == [
        (STOPSIGNAL, E, 3, "STOPSIGNAL")
    ]
    assert check(f"FROM python\nARG SIG\nSTOPSIGNAL $SIG\n{serve}") == []  # decided at build time
    assert check(f"FROM python\nSTOPSIGNAL SIGKILL\nSTOPSIGNAL SIGTERM\n{serve}") == []  # the last one counts


# -- lameduck settings --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('FROM python\nENV LAMEDUCK_GRACE=60\nCMD ["lameduck", "serve", "a:b"]\n', []),
        (
            'FROM python\nENV LAMEDUCK_GRACE=10\nCMD ["lameduck", "serve", "a:b"]\n',
            [(SETTINGS, E, 2, "ENV LAMEDUCK_GRACE")],
        ),
        ('FROM python\nCMD ["lameduck", "serve", "a:b", "--drain-timeout", "forever"]\n', [(SETTINGS, E, 2, "CMD")]),
        (
            'FROM python\nCMD ["python", "-m", "lameduck", "work", "jobs:w", "--backlog", "1"]\n',
            [(SETTINGS, E, 2, "CMD")],
        ),
        ("FROM python\nENV LAMEDUCK_LOG_LEVEL=loud\n", [(SETTINGS, E, 2, "ENV LAMEDUCK_LOG_LEVEL")]),
        ("FROM python\nENV LAMEDUCK_NOT_A_SETTING=1\nCMD exec lameduck serve a:b\n", []),
        ("FROM python\nCMD exec lameduck serve a:b --grace $GRACE\n", []),  # decided when the container starts
        ("FROM python\nENV GRACE=0\nCMD exec lameduck serve a:b --grace $GRACE\n", [(SETTINGS, E, 3, "CMD")]),
        ("FROM python\nCMD exec lameduck serve a:b --grace ${GRACE:-0}\n", [(SETTINGS, E, 2, "CMD")]),
        ("FROM python\nARG G\nENV LAMEDUCK_GRACE=$G\nCMD exec lameduck serve a:b\n", []),
        (
            'FROM python\nCOPY <<EOF /start.sh\nexec lameduck serve a:b --port 70000\nEOF\nCMD ["/start.sh"]\n',
            [(SETTINGS, E, 5, "CMD")],
        ),
    ],
)
def test_lameduck_settings(text: str, expected: list[tuple[str, Severity, int, str]]) -> None:
    assert summary(check(text)) == expected


def test_a_budget_that_cannot_fit_shows_its_arithmetic() -> None:
    (finding,) = check('FROM python\nENV LAMEDUCK_GRACE=10\nCMD ["lameduck", "serve", "a:b"]\n')
    assert "lame-duck 5 + cleanup 3 + margin 2 = 10 leaves 0 of grace 10" in finding.message
    assert finding.extra["setting"] == "--grace"


# -- file names ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("Dockerfile", True),
        ("dockerfile", True),
        ("Containerfile", True),
        ("deploy/Dockerfile.prod", True),
        ("api.Dockerfile", True),
        ("C:\\src\\app\\Dockerfile", True),
        ("worker.containerfile", True),
        ("Dockerfile.dockerignore", False),
        ("Dockerfile.yaml", False),
        ("deploy.yaml", False),
        ("Dockerfiles", False),
        ("-", False),
    ],
)
def test_is_dockerfile_name(name: str, expected: bool) -> None:
    assert is_dockerfile_name(name) is expected


# -- never anything but ManifestError -----------------------------------------------------------------------------


def check_or_refuse(text: str) -> list[Finding]:
    """``check`` on any text: findings that point inside the file, or a ManifestError with a position."""
    refused: ManifestError | None = None
    found: list[Finding] = []
    try:
        found = check(text)
    except ManifestError as exc:
        refused = exc
    if refused is not None:
        assert refused.source == "Dockerfile"
        assert refused.line >= 0
        return []
    lines = text.count("\n") + 1
    for f in found:
        assert 1 <= f.location.line <= lines
        f.message.encode("utf-8")
        f.fix.encode("utf-8")
    return found


@settings(derandomize=True, max_examples=300, deadline=None)
@given(st.text())
def test_any_text_gives_findings_or_a_manifest_error(text: str) -> None:
    check_or_refuse(text)


_KEYWORDS = st.sampled_from(
    ["FROM", "from", "CMD", "ENTRYPOINT", "entrypoint", "ENV", "ARG", "SHELL", "STOPSIGNAL", "ONBUILD", "RUN", "COPY"]
)
_ARGUMENTS = st.one_of(
    st.sampled_from(
        [
            "python:3.12-slim AS base",
            "base",
            "scratch",
            "${BASE}",
            '["lameduck", "serve", "app:app", "--host", "0.0.0.0"]',
            '["sh", "-c", "migrate && lameduck serve app:app"]',
            '["tini", "--"]',
            '["/docker-entrypoint.sh"]',
            '["/bin/bash", "-o", "pipefail", "-c"]',
            "[]",
            "uvicorn app:app --port $PORT",
            "exec lameduck serve app:app --grace ${G:-abc}",
            "LAMEDUCK_GRACE=10 LAMEDUCK_HOST=0.0.0.0",
            "BASE=base G",
            "SIGQUIT",
            "9",
            "CMD uvicorn app:app",
            "<<EOF /entrypoint.sh",
            "<<-'EOF'",
        ]
    ),
    st.text(alphabet=st.sampled_from(list(" \t\\`'\"$[]{}:=,-<>#abcGIKLMNSTU019/")), max_size=24),
)
_LINES = st.builds(
    lambda keyword, argument, tail: f"{keyword} {argument}{tail}",
    _KEYWORDS,
    _ARGUMENTS,
    st.sampled_from(["", " \\", " `", "\r"]),
)


@settings(derandomize=True, max_examples=300, deadline=None)
@given(
    st.lists(st.one_of(_LINES, st.sampled_from(["", "# comment", "# escape=`", "EOF", "\tEOF"])), max_size=14),
    st.sampled_from(["FROM python:3.12-slim\n", "ARG BASE=python\nFROM $BASE AS base\n", ""]),
)
def test_plausible_instructions_give_findings_or_a_manifest_error(lines: list[str], head: str) -> None:
    check_or_refuse(head + "\n".join(lines))
