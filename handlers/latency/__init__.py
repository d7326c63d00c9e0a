"""handlers/latency"""
