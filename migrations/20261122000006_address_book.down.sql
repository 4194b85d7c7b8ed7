DROP TABLE schedule_runs;
DROP TABLE scheduled_sends;
DROP TABLE message_templates;
DROP TABLE contact_imports;
DROP TABLE contact_group_members;
DROP TABLE contacts;
DROP TABLE contact_groups;
