"""Catalog files for the tests (format: WHARF_CATALOG, see the README)."""
import copy
import json
import os

PRICING = {"baseFee": "20.00", "metrics": {"storage": {"unit": "GB-month", "unitPrice": "0.25",
                                                       "per": 1073741824, "metric": "storageBytes",
                                                       "type": "total"}}}
LIMITS = {"storageBytes": 1073741824, "statementTimeoutMs": 5000}

# Two products; `team-db` carries installation-scope plans (installation-level billing).
# The default installation plan is `team-free` (marked "default") although `team-hobby`, also
# free, comes first.
CUSTOM = {
    "products": [
        {"id": "kv-store", "kind": "sqlite", "name": "KV Store",
         "plans": ["kv-small", "kv-eu-only", "kv-credits"],
         "metadataSchema": {"type": "object",
                            "properties": {"region": {"type": "string", "enum": ["iad1", "fra1", "sfo1"]}}}},
        {"id": "team-db", "kind": "sqlite", "name": "Team DB",
         "plans": ["team-pro", "team-hobby", "team-free", "team-enterprise"]},
    ],
    "plans": [
        {"id": "kv-small", "type": "subscription", "name": "Small", "description": "Small KV",
         "scope": "resource", "paymentMethodRequired": False, "cost": "Free",
         "pricing": {"baseFee": "0.00", "metrics": {}}, "limits": LIMITS},
        {"id": "kv-eu-only", "type": "subscription", "name": "EU", "description": "Only in Frankfurt",
         "scope": "resource", "paymentMethodRequired": True, "cost": "$5.00/month",
         "details": [{"label": "Region", "value": "fra1"}],
         "match": {"region": ["fra1"]}, "pricing": PRICING, "limits": LIMITS},
        {"id": "kv-credits", "type": "prepayment", "name": "Credits", "description": "Prepaid",
         "scope": "resource", "minimumAmount": "5.00", "maximumAmount": "500.00",
         "pricing": PRICING},
        {"id": "team-pro", "type": "subscription", "name": "Team Pro", "description": "Paid team plan",
         "scope": "installation", "paymentMethodRequired": True, "preauthorizationAmount": 10.53,
         "initialCharge": "20.00", "cost": "$20.00/month", "pricing": PRICING, "limits": LIMITS},
        {"id": "team-hobby", "type": "subscription", "name": "Team Hobby", "description": "Free, first",
         "scope": "installation", "paymentMethodRequired": False},
        {"id": "team-free", "type": "subscription", "name": "Team Free", "description": "Free default",
         "scope": "installation", "paymentMethodRequired": False, "default": True, "limits": LIMITS},
        {"id": "team-enterprise", "type": "subscription", "name": "Enterprise", "description": "Call us",
         "scope": "installation", "paymentMethodRequired": True, "disabled": True,
         "highlightedDetails": [{"label": "SLA", "value": "99.99%"}]},
    ],
}

CUSTOM_PLAN_IDS = [p["id"] for p in CUSTOM["plans"]]


def without_default():
    """Same catalog with no plan marked default: the first free installation plan
    (team-hobby; team-pro before it is paid) becomes the default."""
    c = copy.deepcopy(CUSTOM)
    for p in c["plans"]:
        p.pop("default", None)
    return c


def write(dirpath, catalog, name="catalog.json"):
    os.makedirs(dirpath, exist_ok=True)
    path = os.path.join(str(dirpath), name)
    with open(path, "w") as f:
        if isinstance(catalog, (dict, list)):
            json.dump(catalog, f)
        else:
            f.write(catalog)
    return path


# A product sold only on installation-level plans: free by default, a paid one ($20/month).
TEAM_PLANS = {
    "products": [{"id": "sqlite-db", "kind": "sqlite", "name": "DB",
                  "plans": ["team-free", "team-pro"]}],
    "plans": [
        {"id": "team-free", "type": "subscription", "name": "Team free", "description": "d",
         "scope": "installation", "paymentMethodRequired": False},
        {"id": "team-pro", "type": "subscription", "name": "Team pro", "description": "d",
         "scope": "installation", "paymentMethodRequired": True, "cost": "$20.00/month",
         "pricing": {"baseFee": "20.00"}},
    ],
}
