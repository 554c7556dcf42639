"""Queries and tools (DESIGN §4.1): names, function schemas, α-UMi prompt entries, Finish."""

from __future__ import annotations

import json

import pytest

from glpft import prompts as P
from glpft.formats import FormatError
from toolbench_multillm.tools import (
    FINISH_NAME,
    ToolNotFound,
    build_api,
    build_toolset,
    change_name,
    function_name,
    load_queries,
    split_function_name,
    standardize,
    toolset_from_functions,
)


@pytest.mark.parametrize(
    "raw, expected",
    [
        ("Songkick concert", "songkick_concert"),
        ("Retorna dados do endereço através do CEP", "retorna_dados_do_endere_o_atrav_s_do_cep"),
        ("  --Get   /v1/users--  ", "get_v1_users"),
        ("1800 Flowers", "get_1800_flowers"),  # ToolBench prefixes names that start with a digit
        ("天气 API", "天气_api"),
        ("a^b", "a^b"),  # paper parity: "^" survives (a quirk of ToolBench's character class)
        ("___", ""),
    ],
)
def test_standardize_matches_toolbench(raw, expected):
    assert standardize(raw) == expected


def test_change_name_prefixes_reserved_names_only():
    assert [change_name(n) for n in ("id", "from", "and", "identity")] == [
        "is_id",
        "is_from",
        "is_and",
        "identity",
    ]


def test_function_name_keeps_last_64_characters_and_splits_at_first_for():
    name = function_name("Get " + "x" * 70, "My Tool")
    assert len(name) == 64 and name.endswith("_for_my_tool")
    assert function_name("ID", "Tool") == "is_id_for_tool"
    assert split_function_name("search_for_products_for_amazon") == ("search", "products_for_amazon")
    assert split_function_name("nofor") == ("nofor", "")


def test_reference_queries_give_the_function_names_of_toolbench_answers(reference_dir):
    """SQUAKE's two APIs in G1_query are the functions ChatGPT called in G2 answer 52."""
    queries = load_queries(reference_dir / "toolbench_data_example/instruction/G1_query.json")
    answer = json.loads(
        (
            reference_dir / "toolbench_data_example/answer/G2_answer/52_ChatGPT_DFS_woFilter_w2.json"
        ).read_text()
    )
    answer_names = {f["name"] for f in answer["answer_generation"]["function"]}
    toolset = build_toolset(queries[0])
    assert [a.name for a in toolset.apis] == ["checkhealth_for_squake", "projects_for_squake"]
    assert set(toolset.by_name) <= answer_names
    assert toolset.functions[-1]["name"] == FINISH_NAME
    assert all(t["Name"] != FINISH_NAME for t in toolset.prompt_tools)


def test_stabletoolbench_queries_load_and_build(reference_dir):
    folder = reference_dir / "stabletoolbench/solvable_queries/test_instruction"
    for path in sorted(folder.glob("*.json")):
        queries = load_queries(path)
        assert queries and all(q.query_id for q in queries)
        for q in queries[:20]:
            toolset = build_toolset(q)
            assert len(toolset.functions) == len(q.api_list) + 1
            for api in toolset.apis:
                assert len(api.name) <= 64 and api.name == function_name(
                    api.doc["api_name"], api.doc["tool_name"]
                )
            P.tool_doc(toolset.prompt_tools)  # the planner's {doc} can be built


def test_prompt_entry_follows_the_alpha_umi_real_time_format():
    doc = {
        "category_name": "Data",
        "tool_name": "TheClique",
        "api_name": "Songkick concert",
        "api_description": "Songkick concert info",
        "required_parameters": [{"name": "id", "type": "STRING", "description": "", "default": "x"}],
        "optional_parameters": [{"name": "n", "type": "NUMBER", "description": "how many", "default": ""}],
        "method": "GET",
    }
    api = build_api(doc)
    assert api.name == "songkick_concert_for_theclique"
    assert api.prompt_entry == {
        "Name": "songkick_concert_for_theclique",
        "function": "songkick_concert_for_theclique info",  # the raw API name is replaced by the function name
        "input": {"id": "string", "n": "integer, how many"},
    }
    props = api.schema["parameters"]
    assert props["required"] == ["is_id"] and props["optional"] == ["n"]
    assert props["properties"]["is_id"] == {"type": "string", "description": "", "example_value": "x"}
    assert (api.category, api.tool_name, api.api_name) == ("Data", "theclique", "songkick_concert")


def test_parameters_are_documented_only_with_a_required_parameter():
    """paper parity: an API with only optional parameters shows no inputs."""
    doc = {
        "category_name": "C",
        "tool_name": "T",
        "api_name": "A",
        "api_description": "",
        "required_parameters": [],
        "optional_parameters": [{"name": "q", "type": "STRING", "description": "query", "default": ""}],
    }
    api = build_api(doc)
    assert api.prompt_entry == {"Name": "a_for_t", "function": "", "input": {}}
    assert api.schema["parameters"]["properties"] == {}


def test_training_docs_use_the_preprocessing_converter():
    from glpft.prompts import tool_entry

    query = {
        "api_list": [{"category_name": "C", "tool_name": "T", "api_name": "Get ID", "api_description": "d"}]
    }
    toolset = build_toolset(query, docs="training")
    assert toolset.prompt_tools == [tool_entry(toolset.apis[0].schema, "x")]
    with pytest.raises(ValueError):
        build_toolset(query, docs="other")


def _write_tool(root, category, file, tool_name, apis):
    (root / category).mkdir(parents=True, exist_ok=True)
    (root / category / file).write_text(
        json.dumps({"tool_name": tool_name, "tool_description": "d", "api_list": apis})
    )


def test_tool_root_dir_supplies_docs_and_the_file_name_as_tool_name(tmp_path):
    api = {
        "name": "Love Quote",
        "description": "A random Love Quote",
        "method": "GET",
        "required_parameters": [
            {"name": "lang", "type": "STRING", "description": "language", "default": "en"}
        ],
        "optional_parameters": [],
    }
    _write_tool(tmp_path, "Social", "olato_quotes.json", "Olato Quotes", [api])
    query = {
        "query": "q",
        "api_list": [{"category_name": "Social", "tool_name": "Olato Quotes", "api_name": "Love Quote"}],
    }
    toolset = build_toolset(query, tool_root_dir=str(tmp_path))
    (only,) = toolset.apis
    assert only.name == "love_quote_for_olato_quotes"
    assert only.prompt_entry["function"] == "A random love_quote_for_olato_quotes"
    assert only.prompt_entry["input"] == {"lang": "string, language"}
    with pytest.raises(ToolNotFound):
        build_toolset(
            {"api_list": [{"category_name": "Social", "tool_name": "Nope", "api_name": "x"}]}, str(tmp_path)
        )
    with pytest.raises(ToolNotFound):
        build_toolset(
            {"api_list": [{"category_name": "Social", "tool_name": "Olato Quotes", "api_name": "x"}]},
            str(tmp_path),
        )
    with pytest.raises(ToolNotFound):
        build_toolset(
            {"api_list": [{"category_name": "../etc", "tool_name": "passwd", "api_name": "x"}]}, str(tmp_path)
        )


def test_load_queries_errors_name_file_and_field(tmp_path):
    path = tmp_path / "q.json"
    path.write_text(json.dumps([{"query": "q", "api_list": [{"tool_name": "t", "api_name": "a"}]}]))
    with pytest.raises(FormatError, match=r"q\.json: query\[0\].*api_list\[0\]\.category_name"):
        load_queries(path)
    path.write_text("{}")
    with pytest.raises(FormatError, match="expected a JSON list"):
        load_queries(path)
    path.write_text(json.dumps([{"query": "q", "api_list": []}]))
    assert load_queries(path)[0].query_id == "0"


def test_toolset_from_answer_functions_round_trips_names(reference_dir):
    answer = json.loads(
        (
            reference_dir / "toolbench_data_example/answer/G1_answer/10_ChatGPT_DFS_woFilter_w2.json"
        ).read_text()
    )
    toolset = toolset_from_functions(answer["answer_generation"]["function"])
    assert [(a.name, a.tool_name, a.api_name) for a in toolset.apis] == [
        ("transitaire_for_transitaires", "transitaires", "transitaire"),
        ("transitaires_for_transitaires", "transitaires", "transitaires"),
    ]
    assert toolset.prompt_tools[0]["input"] == {"is_id": "string, "}
