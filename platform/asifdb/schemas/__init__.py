"""The public contract, one module per resource: what the services return, what every API
route declares as its `response_model` (so /openapi.json describes every answer), and what the
CLI and the UI render. Field names are the API's: `license` (never "licence") for the licence's
name, `license_id` for its id. A new field goes here first; the contract test
(tests/integration/api/test_contract.py) then checks real answers against it."""
