"""The pipeline: read sources and a tenant's target, plan it, execute the plan, recover in-doubt
imports, activate and verify. Imports migrator.core, migrator.zuora and migrator.store.
"""
