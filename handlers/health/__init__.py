"""handlers/health"""
