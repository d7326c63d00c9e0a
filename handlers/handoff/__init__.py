"""handlers/handoff"""
