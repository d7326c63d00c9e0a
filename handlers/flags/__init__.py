"""handlers/flags"""
