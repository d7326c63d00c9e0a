"""handlers/incidents"""
