"""SenseVoiceSmall speech recognition served from one long-lived process."""
