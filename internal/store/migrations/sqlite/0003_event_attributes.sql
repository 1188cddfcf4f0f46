-- 3: an event stores its CloudEvents type, source and subject, so the
-- delivery engine sends any event without knowing its contract. Events of
-- earlier versions are all DataExport events: their attributes are derived
-- as the sender used to derive them.
ALTER TABLE events ADD COLUMN ce_type TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN source TEXT NOT NULL DEFAULT '';
ALTER TABLE events ADD COLUMN subject TEXT NOT NULL DEFAULT '';
UPDATE events SET
	ce_type = CASE type WHEN 'DataExportFailed' THEN 'com.exportbridge.dataexport.failed' ELSE 'com.exportbridge.dataexport.completed' END,
	source  = '/exportbridge/jobs/' || job,
	subject = CASE entity WHEN '' THEN job ELSE entity END;
