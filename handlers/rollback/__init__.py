"""handlers/rollback"""
