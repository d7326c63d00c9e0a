"""The rows stand_ins/demo_diagnostics.py seeds: one story per runbook, ages in seconds (or days) before the demo
database's `now()`.

Mira: OpenAI is timing out (LLM_TIMEOUT errors, the circuit breaker opened), one navigation action keeps failing
and the router misreads a few requests. Ivy: RAG requests failed half an hour ago and last night's eval dropped
to 76%. AI Assistant: OpenAI timeouts over 1% of the hour's messages. FA: the last batch run succeeded for 93% of
its stocks, and the fact check rejected a dozen summaries. Nothing here is used outside the console.
"""

from __future__ import annotations

import json

MINUTE = 60

# --- Mira ------------------------------------------------------------------------------------------------------

#: mira_intent_logs: (module, user_message, detected_intent, confidence, age). Seven under 0.5 in the last hour
#: (one at 0.21, under the catalog's critical 0.3), two more over an hour ago.
INTENTS: list[tuple[object, ...]] = [
    ("customer", "find Kim", "customer.search_lead", 0.94, 2 * MINUTE),
    ("customer", "look up lead by phone 91234567", "general.chat", 0.21, 4 * MINUTE),
    ("customer", "show me my hot leads", "customer.list_leads", 0.88, 6 * MINUTE),
    ("proposal", "draft a proposal for Amanda", "proposal.create", 0.91, 9 * MINUTE),
    ("customer", "who did I call yesterday", "analytics.activity", 0.46, 12 * MINUTE),
    ("analytics", "how am I tracking vs target", "analytics.performance", 0.83, 15 * MINUTE),
    ("proposal", "redo the premium for the Tan family", "customer.search_lead", 0.38, 18 * MINUTE),
    ("customer", "search for customer named Amanda", "customer.search_lead", 0.97, 21 * MINUTE),
    ("chat", "remind me to follow up friday", "general.chat", 0.44, 25 * MINUTE),
    ("analytics", "top 5 products this quarter", "analytics.products", 0.79, 29 * MINUTE),
    ("customer", "pull up the lead from the roadshow", "customer.search_lead", 0.41, 33 * MINUTE),
    ("proposal", "compare plan A and plan B for Lim", "proposal.compare", 0.86, 38 * MINUTE),
    ("chat", "what can you do", "general.help", 0.92, 42 * MINUTE),
    ("analytics", "persistency ratio last 3 months", "general.chat", 0.33, 47 * MINUTE),
    ("customer", "new lead: Raj, 9876 5432", "customer.create_lead", 0.74, 52 * MINUTE),
    ("customer", "find Kim's husband", "customer.search_lead", 0.49, 56 * MINUTE),
    ("chat", "translate this to Malay", "general.chat", 0.31, 75 * MINUTE),
    ("proposal", "send the illustration", "proposal.send", 0.42, 3 * 60 * MINUTE),
]

# mira_events rows: (event_type, success, action_type, module, tool_name, error_code, error_message, age).
_ROUTE_MISSING = "Route /customer/leads/undefined not found"
_PREMIUM_MISSING = "Field premium_amount missing from action payload"
_TIMEOUT = "OpenAI request timed out after 30s"
_READ_TIMEOUT = "upstream read timeout (api.openai.com)"
MIRA_EVENTS: list[tuple[object, ...]] = [
    # Issue 2: one navigation fails 7 times in 10 minutes (over the catalog's 5), a prefill 3 times.
    *[
        ("action_execution", False, "navigate", "customer", None, None, _ROUTE_MISSING, age * MINUTE)
        for age in (1, 2, 3, 5, 6, 8, 9)
    ],
    *[
        ("action_execution", False, "prefill_form", "proposal", None, None, _PREMIUM_MISSING, age * MINUTE)
        for age in (2, 4, 7)
    ],
    (
        "action_execution",
        False,
        "open_modal",
        "analytics",
        None,
        None,
        "MiraContextProvider is not mounted",
        14 * MINUTE,
    ),
    *[
        ("action_execution", True, "navigate", "customer", None, None, None, age * MINUTE)
        for age in (1, 3, 4, 7)
    ],
    # Issue 2 step 3: tool executions failing on RLS and a slow endpoint.
    *[
        (
            "tool_execution_error",
            False,
            None,
            "customer",
            "search_leads",
            None,
            "permission denied for table leads (RLS policy advisor_leads)",
            age * MINUTE,
        )
        for age in (2, 5, 6, 9)
    ],
    *[
        (
            "tool_execution_error",
            False,
            None,
            "proposal",
            "get_policy_details",
            None,
            "timeout after 10000 ms",
            age * MINUTE,
        )
        for age in (3, 8)
    ],
    # Issue 4: the circuit breaker opened on the LLM provider.
    (
        "circuit_breaker_opened",
        False,
        None,
        "chat",
        None,
        "LLM_PROVIDER",
        "openai: 5 failures in 30s, breaker open",
        7 * MINUTE,
    ),
    # Investigate High Error Rate / Get Recent Errors: 12 timeouts in 10 minutes (over the catalog's 10).
    *[("error", False, None, "chat", None, "LLM_TIMEOUT", _TIMEOUT, age * 40) for age in range(1, 9)],
    *[
        ("error", False, None, "customer", None, "LLM_TIMEOUT", _READ_TIMEOUT, age * 45 + 20)
        for age in range(1, 5)
    ],
    *[
        (
            "error",
            False,
            None,
            "chat",
            None,
            "RATE_LIMITED",
            "429 Too Many Requests from api.openai.com",
            age * MINUTE,
        )
        for age in (3, 6, 9)
    ],
    *[
        (
            "error",
            False,
            None,
            "customer",
            None,
            "TOOL_ERROR",
            "search_leads failed: permission denied",
            age * MINUTE,
        )
        for age in (16, 31)
    ],
    *[
        (
            "error",
            False,
            None,
            "proposal",
            None,
            "VALIDATION",
            "Action payload missing target route",
            age * MINUTE,
        )
        for age in (19, 27, 44, 58)
    ],
    ("error", False, None, "chat", None, "LLM_TIMEOUT", _TIMEOUT, 2 * 60 * MINUTE),
]

#: mira_conversations: (conversation_id, mode, advisor_id, status, created age, updated age). Six active in
#: the last hour; one active but idle for two hours, and two closed, which the query leaves out.
CONVERSATIONS: list[tuple[object, ...]] = [
    ("conv-7f3a", "command", "adv-0142", "active", 48 * MINUTE, 1 * MINUTE),
    ("conv-7f41", "copilot", "adv-0087", "active", 22 * MINUTE, 2 * MINUTE),
    ("conv-7f44", "command", "adv-0311", "active", 9 * MINUTE, 3 * MINUTE),
    ("conv-7f29", "insight", "adv-0142", "active", 95 * MINUTE, 11 * MINUTE),
    ("conv-7f35", "command", "adv-0256", "active", 30 * MINUTE, 26 * MINUTE),
    ("conv-7f12", "copilot", "adv-0019", "active", 140 * MINUTE, 52 * MINUTE),
    ("conv-7e98", "command", "adv-0087", "active", 200 * MINUTE, 120 * MINUTE),
    ("conv-7f20", "command", "adv-0311", "closed", 70 * MINUTE, 40 * MINUTE),
    ("conv-7f31", "insight", "adv-0256", "closed", 35 * MINUTE, 20 * MINUTE),
]

_LEADS = "SELECT * FROM leads WHERE advisor_id = $1 ORDER BY updated_at DESC"
_POLICIES = "SELECT p.* FROM policies p JOIN customers c ON c.id = p.customer_id WHERE c.advisor_id = $1"
_EVENTS = "SELECT count(*) FROM mira_events WHERE created_at >= $1"
_CUSTOMER = "SELECT id, name FROM customers WHERE id = $1"
#: mira_query_logs: (query_text, execution_time_ms, age). The leads query averages 3.4 s (over Issue 3's 3 s).
QUERY_LOGS: list[tuple[object, ...]] = [
    *[(_LEADS, ms, age * MINUTE) for ms, age in ((3200, 5), (3500, 21), (3600, 44))],
    *[(_POLICIES, ms, age * MINUTE) for ms, age in ((1200, 3), (1500, 17), (1300, 33), (1800, 50))],
    *[(_EVENTS, ms, age * MINUTE) for ms, age in ((1100, 12), (1000, 40))],
    *[(_CUSTOMER, ms, age * MINUTE) for ms, age in ((40, 2), (35, 14), (50, 29))],
    ("SELECT * FROM proposals WHERE status = 'draft'", 5200, 2 * 60 * MINUTE),
]

# --- Ivy -------------------------------------------------------------------------------------------------------

#: ai_router_events failures: (query_kind, latency_ms, age). RAG failed 24 times 15 to 45 minutes ago (about 4%
#: of its requests in the hour), conversational 4 times (under 1%).
IVY_FAILURES: list[tuple[object, ...]] = [
    *[("rag", 700 + 20 * i, 15 * MINUTE + 75 * i) for i in range(24)],
    *[("conversational", 400 + 30 * i, 20 * MINUTE + 300 * i) for i in range(4)],
]

#: eval_reports: (suite, total, passed, failed, nights ago). Last night 76%, under the 80% SLO.
EVAL_REPORTS: list[tuple[object, ...]] = [
    ("nightly", 50, passed, 50 - passed, nights) for nights, passed in enumerate((38, 42, 44, 45, 43, 46, 45))
]

# --- AI Assistant ----------------------------------------------------------------------------------------------

#: ai_messages failures: (error_type, age). 16 OpenAI timeouts in the hour (over 1% of about 1,200 messages:
#: Key Metrics' warning), rate limits and a database blip under it.
AI_ERRORS: list[tuple[object, ...]] = [
    *[("openai_timeout", 6 * MINUTE + 180 * i) for i in range(16)],
    *[("openai_rate_limit", 10 * MINUTE + 420 * i) for i in range(6)],
    *[("db_connection", age * MINUTE) for age in (33, 34)],
]

#: knowledge_documents: (document_id, title, document_type, language, days ago). Thirteen, so "the 10 latest"
#: leaves some out.
KNOWLEDGE_DOCUMENTS: list[tuple[object, ...]] = [
    ("kd-0013", "AutoBoss V4.0 Startup Procedure", "manual", "en", 1),
    ("kd-0012", "AutoBoss V4.0 Troubleshooting Guide", "troubleshooting", "en", 3),
    ("kd-0011", "AutoBoss V4.0 Manual de mantenimiento", "maintenance", "es", 6),
    ("kd-0010", "AutoBoss V3.5 Maintenance Schedule", "maintenance", "en", 9),
    ("kd-0009", "AutoBoss V3.5 Error Codes", "troubleshooting", "en", 14),
    ("kd-0008", "AutoBoss V4.0 Wartungshandbuch", "maintenance", "de", 20),
    ("kd-0007", "Nozzle Replacement Guide", "maintenance", "en", 27),
    ("kd-0006", "AutoBoss V3.5 Operator Manual", "manual", "en", 35),
    ("kd-0005", "Safety Data Sheet: Cleaning Agent", "safety", "en", 41),
    ("kd-0004", "AutoBoss V3.0 Operator Manual", "manual", "en", 60),
    ("kd-0003", "Pump Pressure Calibration", "maintenance", "en", 75),
    ("kd-0002", "AutoBoss V3.0 Guide d'utilisation", "manual", "fr", 90),
    ("kd-0001", "Warranty Terms", "policy", "en", 120),
]

# --- FA --------------------------------------------------------------------------------------------------------

#: batch_runs: (batch_id, total_stocks, successful, failed, total_cost, minutes, days before the latest run).
#: The latest succeeded for 93% (under the runbook's 95%); the others are the runbook's example and its kin.
BATCH_RUNS: list[tuple[object, ...]] = [
    ("demo-batch-4", 1000, 930, 70, 372.00, 216, 0),
    ("demo-batch-3", 1000, 990, 10, 385.00, 210, 1),
    ("demo-batch-2", 1000, 985, 15, 379.50, 205, 2),
    ("demo-batch-1", 998, 991, 7, 381.20, 221, 3),
]


def _details(layer: str, claim: str, source: str, risk: str = "high") -> str:
    return json.dumps({"risk": risk, "layer": layer, "claim": claim, "source": source})


_FAILED = [
    ("NVDA", "cross_source", "Data center revenue grew 409% QoQ", "EDGAR 10-Q: 409% YoY, 27% QoQ"),
    ("AAPL", "temporal", "Q4 FY2025 guidance raised", "No guidance in the filing dated 2025-10-30"),
    ("TSLA", "cross_source", "Deliveries up 35% in Q3", "FactSet: deliveries +7% YoY"),
    ("MSFT", "uncertainty", "Azure growth will reach 40% next quarter", "Analyst estimate stated as fact"),
    ("AMZN", "cross_source", "AWS operating margin 45%", "EDGAR 10-Q: 38.1%"),
    ("META", "temporal", "Reality Labs profitable in 2024", "Operating loss every quarter of 2024"),
    ("JPM", "cross_source", "Net interest income $30B in Q3", "EDGAR 10-Q: $23.5B"),
    ("XOM", "uncertainty", "Production will double by 2026", "BlueMatrix: +5% target"),
    ("UNH", "cross_source", "Medical cost ratio fell to 80%", "EDGAR 10-Q: 85.2%"),
    ("V", "temporal", "Acquired Visa Europe this quarter", "Closed in 2016"),
    ("PFE", "cross_source", "Paxlovid revenue $10B in Q3", "EDGAR 10-Q: $1.3B"),
    ("KO", "uncertainty", "Price increases of 20% planned", "No source"),
]
_PASSED = (
    "GOOGL",
    "BRK.B",
    "LLY",
    "AVGO",
    "WMT",
    "MA",
    "HD",
    "PG",
    "COST",
    "ORCL",
    "CVX",
    "MRK",
    "ABBV",
    "PEP",
)
#: stock_summaries: (ticker, summary_type, fact_check_status, fact_check_details, age). Twelve rejected by the
#: fact check in the last two hours (the 10 latest shown), fourteen passed.
STOCK_SUMMARIES: list[tuple[object, ...]] = [
    *[
        (ticker, "expanded", "failed", _details(layer, claim, source), (20 + 9 * i) * MINUTE)
        for i, (ticker, layer, claim, source) in enumerate(_FAILED)
    ],
    *[(ticker, "hook", "passed", None, (25 + 7 * i) * MINUTE) for i, ticker in enumerate(_PASSED)],
]
