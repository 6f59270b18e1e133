"""Looking back at data: reports, threshold tuning and detector evaluation."""
