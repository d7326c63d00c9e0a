"""stand_ins"""
