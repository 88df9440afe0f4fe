// The catalog Wharf serves when WHARF_CATALOG is not set: one SQLite database product with
// a free plan, a paid metered plan and a prepaid-credits plan, and a feature-flags product.
// Providers replace it with their own file (same format; see README).
#include "model/catalog.h"

namespace wharf::model {

const std::string& builtin_catalog_json() {
  static const std::string kCatalog = R"json({
  "products": [
    {
      "id": "sqlite-db",
      "kind": "sqlite",
      "name": "SQLite Database",
      "plans": ["sqlite-free", "sqlite-pro", "sqlite-credits"],
      "metadataSchema": {
        "type": "object",
        "properties": {
          "durability": {
            "type": "string",
            "title": "Durability",
            "description": "full: fsync on every commit; normal: fsync at WAL checkpoints",
            "enum": ["full", "normal"],
            "default": "full",
            "ui:control": "select"
          }
        },
        "required": []
      }
    },
    {
      "id": "flags",
      "kind": "flags",
      "name": "Feature Flags",
      "plans": ["flags-free", "flags-pro"]
    }
  ],
  "plans": [
    {
      "id": "flags-free",
      "type": "subscription",
      "name": "Flags Hobby",
      "description": "Up to 50 feature flags, 1 million evaluations a month included",
      "scope": "resource",
      "paymentMethodRequired": false,
      "cost": "Free",
      "details": [
        {"label": "Flags", "value": "50"},
        {"label": "Evaluations", "value": "Unlimited"}
      ],
      "pricing": {"baseFee": "0.00", "metrics": {}},
      "limits": {"maxFlags": 50}
    },
    {
      "id": "flags-pro",
      "type": "subscription",
      "name": "Flags Pro",
      "description": "$10.00 per month plus evaluations, up to 1,000 flags",
      "scope": "resource",
      "paymentMethodRequired": true,
      "cost": "$10.00/month + usage",
      "details": [
        {"label": "Base fee", "value": "$10.00 / month"},
        {"label": "Evaluations", "value": "$0.50 per million"}
      ],
      "pricing": {
        "baseFee": "10.00",
        "metrics": {
          "evaluations": {"unit": "million evaluations", "unitPrice": "0.50", "per": 1000000}
        }
      },
      "limits": {"maxFlags": 1000}
    },
    {
      "id": "sqlite-free",
      "type": "subscription",
      "name": "Hobby",
      "description": "A free database for side projects, up to 256 MB",
      "scope": "resource",
      "paymentMethodRequired": false,
      "cost": "Free",
      "details": [
        {"label": "Storage", "value": "256 MB"},
        {"label": "Queries", "value": "Unlimited"}
      ],
      "pricing": {"baseFee": "0.00", "metrics": {}},
      "limits": {"storageBytes": 268435456, "statementTimeoutMs": 2000, "maxResultBytes": 4194304}
    },
    {
      "id": "sqlite-pro",
      "type": "subscription",
      "name": "Pro",
      "description": "$5.00 per month plus usage, up to 10 GB",
      "scope": "resource",
      "paymentMethodRequired": true,
      "cost": "$5.00/month + usage",
      "details": [
        {"label": "Base fee", "value": "$5.00 / month"},
        {"label": "Storage", "value": "$0.25 per GB-month"},
        {"label": "Rows read", "value": "$0.10 per million"},
        {"label": "Rows written", "value": "$1.00 per million"}
      ],
      "highlightedDetails": [{"label": "Storage", "value": "10 GB"}],
      "pricing": {
        "baseFee": "5.00",
        "metrics": {
          "storage": {"unit": "GB-month", "unitPrice": "0.25", "per": 1073741824, "metric": "storageBytes", "type": "total"},
          "rowsRead": {"unit": "million rows", "unitPrice": "0.10", "per": 1000000},
          "rowsWritten": {"unit": "million rows", "unitPrice": "1.00", "per": 1000000}
        }
      },
      "limits": {"storageBytes": 10737418240, "statementTimeoutMs": 10000, "maxResultBytes": 16777216}
    },
    {
      "id": "sqlite-credits",
      "type": "prepayment",
      "name": "Pay as you go",
      "description": "Buy credits up front; usage is deducted from your balance",
      "scope": "resource",
      "minimumAmount": "5.00",
      "maximumAmount": "1000.00",
      "maximumAmountAutoPurchasePerPeriod": "500.00",
      "details": [
        {"label": "Rows read", "value": "$0.10 per million"},
        {"label": "Rows written", "value": "$1.00 per million"}
      ],
      "pricing": {
        "baseFee": "0.00",
        "metrics": {
          "storage": {"unit": "GB-month", "unitPrice": "0.25", "per": 1073741824, "metric": "storageBytes", "type": "total"},
          "rowsRead": {"unit": "million rows", "unitPrice": "0.10", "per": 1000000},
          "rowsWritten": {"unit": "million rows", "unitPrice": "1.00", "per": 1000000}
        }
      },
      "limits": {"storageBytes": 10737418240, "statementTimeoutMs": 10000, "maxResultBytes": 16777216}
    }
  ]
})json";
  return kCatalog;
}

const std::string& builtin_postgres_catalog_json() {
  static const std::string kCatalog = R"json({
  "products": [
    {
      "id": "postgres-db",
      "kind": "postgres",
      "name": "PostgreSQL Database",
      "plans": ["postgres-free", "postgres-pro"]
    }
  ],
  "plans": [
    {
      "id": "postgres-free",
      "type": "subscription",
      "name": "Postgres Hobby",
      "description": "A free PostgreSQL database for side projects",
      "scope": "resource",
      "paymentMethodRequired": false,
      "cost": "Free",
      "details": [{"label": "Statement timeout", "value": "5 s"}],
      "pricing": {"baseFee": "0.00", "metrics": {}},
      "limits": {"storageBytes": 268435456, "statementTimeoutMs": 5000}
    },
    {
      "id": "postgres-pro",
      "type": "subscription",
      "name": "Postgres Pro",
      "description": "$10.00 per month plus storage and transactions",
      "scope": "resource",
      "paymentMethodRequired": true,
      "cost": "$10.00/month + usage",
      "details": [
        {"label": "Base fee", "value": "$10.00 / month"},
        {"label": "Storage", "value": "$0.25 per GB-month"},
        {"label": "Transactions", "value": "$0.20 per million"}
      ],
      "pricing": {
        "baseFee": "10.00",
        "metrics": {
          "storage": {"unit": "GB-month", "unitPrice": "0.25", "per": 1073741824, "metric": "storageBytes", "type": "total"},
          "transactions": {"unit": "million transactions", "unitPrice": "0.20", "per": 1000000}
        }
      },
      "limits": {"storageBytes": 10737418240, "statementTimeoutMs": 30000}
    }
  ]
})json";
  return kCatalog;
}

}  // namespace wharf::model
