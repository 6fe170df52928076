/// Parley events (issue [log]).
public enum ParleyEvents {}
