"""StableToolBench's cache folder: imported into SQLite, served in place, exported back (stb_cache).

The folder is ``tests/assets/stb_cache/tool_response_cache`` (see tests/assets/README.md).
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from toolbench_multillm import env as E
from toolbench_multillm.cache import ResponseCache, main
from toolbench_multillm.server import ServerConfig, create_app
from toolbench_multillm.stb import stb_location
from toolbench_multillm.stb_cache import StbFolder, StbTable, export_stb, import_stb
from toolbench_multillm.tools import toolset_from_functions

ASSET = Path(__file__).resolve().parents[1] / "assets" / "stb_cache" / "tool_response_cache"
FORECAST = "get_forecast_for_weather_api"

#: (request, what StableToolBench's server answers for it with this cache)
CALLS = [
    ({"tool_input": '{"city": "Paris"}'}, {"error": "", "response": {"temp": 21, "sky": "clear"}}),
    ({"tool_input": {"city": "Paris"}}, {"error": "", "response": {"temp": 21, "sky": "clear"}}),
    (
        {"tool_input": '{"city": "Z\\u00fcrich", "days": 2}'},
        {"error": "", "response": "Zürich: 2 days of snow"},
    ),
    ({"tool_input": ""}, {"error": "", "response": "Forecast needs a city"}),
    ({"tool_input": "{}"}, {"error": "", "response": "Forecast needs a city"}),
    (
        {"tool_input": {"city": "Oslo", "opts": {"units": "metric", "lang": "no"}}},
        {"error": "", "response": [{"day": 1, "temp": -3}, {"day": 2, "temp": -5}]},
    ),
    (
        {"tool_input": '{"city": "Lima", "days": true, "note": null}'},
        {"error": "", "response": "Lima: sunny"},
    ),
    ({"api_name": "id", "tool_input": '{"id": 7}'}, {"error": "", "response": "station 7"}),
    (
        {"category": "News, Media", "tool_name": "headlines_for_News_Media", "api_name": "top_headlines"}
        | {"tool_input": '{"country": "jp"}'},
        {"error": "", "response": "日本のニュース"},
    ),
    (
        {"category": "News, Media", "tool_name": "headlines", "api_name": "top_headlines_for_headlines"}
        | {"tool_input": '{"country": "fr"}'},
        {"error": "", "response": ["Un titre", "Un autre titre"]},
    ),
]
#: requests its server does not find: key order, a different value, a nested key order
MISSES = [
    {"tool_input": '{"days": 2, "city": "Zürich"}'},
    {"tool_input": '{"city": "paris"}'},
    {"tool_input": {"city": "Oslo", "opts": {"lang": "no", "units": "metric"}}},
]


def counts_printed(out: str) -> dict[str, int]:
    """The ``name  value`` lines ``alpha-umi tools`` prints."""
    return {k.strip(): int(v) for k, v in (line.rsplit(None, 1) for line in out.strip().splitlines())}


def request(**fields) -> dict:
    return {
        "category": "Data",
        "tool_name": "weather_api",
        "api_name": "get_forecast",
        "tool_input": "{}",
        "strip": "",
        "toolbench_key": "",
        **fields,
    }


def answers(client: TestClient, calls: list[dict]) -> list[dict]:
    return [client.post("/virtual", json=request(**c)).json() for c in calls]


@pytest.fixture()
def imported(tmp_path) -> Path:
    path = tmp_path / "cache.sqlite"
    import_stb(str(ASSET), str(path))
    return path


def test_import_counts_entries_reports_unreadable_files_in_one_line_and_is_idempotent(
    tmp_path, capsys, caplog
):
    cache = tmp_path / "cache.sqlite"
    assert main(["import-stb", "--cache-dir", str(ASSET), "--cache", str(cache)]) == 0
    assert counts_printed(capsys.readouterr().out) == {
        "files": 4,
        "entries": 10,
        "new entries": 9,
        "bad entries": 1,
        "unreadable files": 1,
        "StableToolBench entries in cache": 9,
    }
    skipped = [r.getMessage() for r in caplog.records if r.getMessage().startswith("skipped")]
    assert len(skipped) == 1 and "broken.json" in skipped[0] and "\n" not in skipped[0]
    assert "Traceback" not in caplog.text
    assert main(["import-stb", "--cache_dir", str(ASSET), "--cache", str(cache)]) == 0
    assert counts_printed(capsys.readouterr().out)["new entries"] == 0
    rows = sqlite3.connect(cache).execute("SELECT category, tool, api, input FROM stb_responses ORDER BY seq")
    assert list(rows)[:2] == [  # file order is kept (its simulator's examples are the first entries)
        ("Data", "weather_api_for_Data", "get_forecast", "{'city': 'Paris'}"),
        ("Data", "weather_api_for_Data", "get_forecast", "{'city': 'Zürich', 'days': 2}"),
    ]


@pytest.mark.parametrize("where", ["in place", "imported"])
def test_lookups_follow_its_rules_on_tricky_arguments(where, imported, tmp_path):
    if where == "in place":
        config = ServerConfig(cache=ResponseCache(tmp_path / "new.sqlite"), stb_folder=StbFolder(str(ASSET)))
    else:
        config = ServerConfig(cache=ResponseCache(imported))
    config.stb_rules = True
    with TestClient(create_app(config)) as c:
        got = answers(c, [call for call, _ in CALLS])
        assert got == [{**want, "source": "cache-real"} for _, want in CALLS]
        for miss in answers(c, MISSES):
            assert miss["source"] == "none" and miss["error"].startswith("no cached response")
        other = c.post("/virtual", json=request(category="Weather", tool_input='{"city": "Paris"}'))
        assert other.status_code == 404  # another category is another folder: nothing knows the tool
        bad = c.post("/virtual", json=request(tool_input="not json")).json()
        assert bad == {"error": "Tool input parse error...\n", "response": "", "source": "none"}
        assert c.get("/stats").json()["by_source"]["cache-real"] == len(CALLS)


def test_the_folder_is_read_only_and_reread_when_a_file_changes(tmp_path):
    folder = tmp_path / "tool_response_cache"
    shutil.copytree(ASSET, folder)
    before = {p: p.read_bytes() for p in folder.rglob("*.json")}
    upstream = E.ToolClient(
        "http://up.test/rapidapi",
        "k",
        max_retries=0,
        http_client=httpx.Client(
            transport=httpx.MockTransport(
                lambda r: httpx.Response(200, json={"error": "", "response": "live"})
            )
        ),
    )
    config = ServerConfig(
        cache=ResponseCache(tmp_path / "new.sqlite"), upstream=upstream, stb_folder=StbFolder(str(folder))
    )
    config.stb_rules = True
    with TestClient(create_app(config)) as c:
        new = request(tool_input='{"city": "Rome"}')
        assert c.post("/virtual", json=new).json()["source"] == "upstream"
        assert c.post("/virtual", json=new).json() == {
            "error": "",
            "response": "live",
            "source": "cache-real",
        }
        assert {p: p.read_bytes() for p in folder.rglob("*.json")} == before  # new entries went to SQLite
        # StableToolBench's layout in SQLite: the request's location and str(tool_input)
        loc = stb_location("Data", "weather_api", "get_forecast")
        assert config.stb.get(loc, "{'city': 'Rome'}")[0] == {"error": "", "response": "live"}
        target = folder / "Data" / "weather_api_for_Data" / "get_forecast.json"
        data = json.loads(target.read_text())
        data["{'city': 'Paris'}"]["response"] = "edited"
        target.write_text(json.dumps(data, indent=2))
        assert c.post("/virtual", json=request(tool_input='{"city": "Paris"}')).json()["response"] == "edited"


def test_json_typed_responses_round_trip_import_serve_and_observation_encoded_once(imported):
    with TestClient(create_app(ServerConfig(cache=ResponseCache(imported), stb_rules=True))) as c:
        client = E.make_client("server", url="http://testserver/virtual", http_client=c)
        env = E.ToolEnv(toolset_from_functions([{"name": FORECAST}], category="Data"), client)
        obs, status = env.step(FORECAST, '{"city": "Paris"}')
        assert status == E.OK and env.last_source == "cache-real"
        assert obs == json.dumps({"temp": 21, "sky": "clear"})  # the object, encoded once
        assert json.loads(obs) == {"temp": 21, "sky": "clear"}
        obs, _ = env.step(FORECAST, '{"city": "Zürich", "days": 2}')
        assert obs == json.dumps("Zürich: 2 days of snow")  # text stays a JSON string


def test_export_writes_its_layout_back_merges_and_is_idempotent(imported, tmp_path, capsys):
    out = tmp_path / "exported"
    cache = ResponseCache(imported)
    # a project row with a category is exported too, keyed str() of its (canonical) input
    cache.put(
        "Weather API", "Get Forecast", '{"days": 3, "city": "Rome"}', "", {"temp": 25}, "upstream", "Data"
    )
    cache.put("weather_api", "get_forecast", '{"city": "Nice"}', "", "no category", "trajectory")
    cache.put("weather_api", "get_forecast", "not json", "", "text input", "upstream", "Data")
    cache.close()
    assert main(["export-stb", "--cache", str(imported), "--out-dir", str(out)]) == 0
    assert counts_printed(capsys.readouterr().out) == {
        "files written": 4,
        "entries written": 10,
        "entries already there": 0,
        "unreadable files": 0,
        "rows without a category (not exported)": 1,
        "rows with a non-JSON input (not exported)": 1,
    }
    forecast = json.loads((out / "Data" / "weather_api_for_Data" / "get_forecast.json").read_text())
    original = json.loads((ASSET / "Data" / "weather_api_for_Data" / "get_forecast.json").read_text())
    assert list(forecast.items())[: len(original)] == list(original.items())  # values and order as imported
    assert forecast["{'city': 'Rome', 'days': 3}"] == {"error": "", "response": {"temp": 25}}
    raw = (out / "Data" / "weather_api_for_Data" / "get_forecast.json").read_text()
    assert "Z\\u00fcrich" in raw and raw.startswith('{\n    "')  # as its server writes: indent 4, ASCII
    assert export_stb(str(imported), str(out))["entries written"] == 0  # idempotent
    # files already there are merged: their entries are kept, ours added
    theirs = out / "News_Media" / "headlines_for_News_Media" / "top_headlines.json"
    theirs.write_text(json.dumps({"{'country': 'fr'}": {"error": "", "response": "theirs"}}))
    counts = export_stb(str(imported), str(out))
    assert (
        counts["entries written"] == 1
        and json.loads(theirs.read_text())["{'country': 'fr'}"]["response"] == "theirs"
    )
    # the exported folder serves exactly what the import served
    fresh = tmp_path / "again.sqlite"
    import_stb(str(out), str(fresh))
    with TestClient(create_app(ServerConfig(cache=ResponseCache(fresh), stb_rules=True))) as c:
        assert answers(c, [call for call, _ in CALLS[:8]]) == [
            {**w, "source": "cache-real"} for _, w in CALLS[:8]
        ]


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["import-stb", "--cache-dir", "{tmp}/nope", "--cache", "{tmp}/c.sqlite"], "no such directory"),
        (
            ["import-stb", "--cache-dir", "{tmp}/empty", "--cache", "{tmp}/c.sqlite"],
            "no <category>/<tool>/<api>.json",
        ),
        (["import-stb", "--cache-dir", str(ASSET), "--cache", "{tmp}/missing/c.sqlite"], "does not exist"),
        (["import-stb", "--cache-dir", str(ASSET), "--cache", "{tmp}"], "is a folder"),
        (["export-stb", "--cache", "{tmp}/none.sqlite", "--out-dir", "{tmp}/out"], "no such cache file"),
        (["export-stb", "--cache", "{tmp}/notes.txt", "--out-dir", "{tmp}/out"], "not an SQLite database"),
        (["export-stb", "--cache", "{imported}", "--out-dir", "{tmp}/notes.txt"], "is a file"),
        (["export-stb", "--cache", "{imported}", "--out-dir", "{tmp}/a/b"], "does not exist"),
    ],
)
def test_bad_paths_are_one_line_errors_with_exit_2(argv, needle, tmp_path, imported, capsys):
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("not a database")
    argv = [a.format(tmp=tmp_path, imported=imported) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err and "Traceback" not in err, err
    assert err.startswith(f"alpha-umi tools {argv[0]}: ")


def test_an_old_cache_file_is_migrated_and_keeps_working(tmp_path):
    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    conn.executescript(
        """CREATE TABLE responses (category TEXT NOT NULL, tool TEXT NOT NULL, api TEXT NOT NULL,
        input TEXT NOT NULL, error TEXT NOT NULL, response TEXT NOT NULL, source TEXT NOT NULL,
        created REAL NOT NULL, PRIMARY KEY (category, tool, api, input));"""
    )
    conn.execute("INSERT INTO responses VALUES ('', 't', 'a', '{}', '', '{\"x\": 1}', 'simulator', 0)")
    conn.commit()
    conn.close()
    cache = ResponseCache(path)
    hit = cache.get("t", "a", "{}")
    assert hit.response == '{"x": 1}' and hit.source == "simulator"  # old rows are text
    assert cache.put("t", "b", "{}", "", {"x": 1}, "upstream") and cache.get("t", "b", "{}").response == {
        "x": 1
    }
    assert StbTable(cache).enabled
    with TestClient(create_app(ServerConfig(cache=cache))) as c:
        old = c.post("/virtual", json={"tool_name": "t", "api_name": "a"}).json()
        assert old == {"error": "", "response": '{"x": 1}', "source": "simulated:project:unknown"}
