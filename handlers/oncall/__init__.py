"""handlers/oncall"""
